import { expect } from 'chai';
import type { Metadata } from 'nice-grpc';
import { EntryDirection } from '../../src/gen/bank/v1/bank.js';
import { TransferStatus } from '../../src/gen/payments/v1/gateway.js';
import { rng } from '../../src/core/random.js';
import { bearer, Cluster, eventually } from '../helpers/cluster.js';
import { balances, gatewayOf, historyFor, leftovers, outcomeOf, type Outcome } from '../helpers/outcomes.js';
import { PostgresServer } from '../helpers/postgres.js';

// Chaos: three banks and concurrent clients doing random transfers (cross-bank, same-bank, some
// beyond the payer's funds, some replayed with the same key) while the gateway and the banks are
// SIGKILLed and restarted at random moments. When it settles, money is conserved, every key has
// exactly one outcome, every committed transfer is applied exactly once at both banks, no hold or
// in-doubt leg is left, and every history entry belongs to a committed transfer.
//
// Cluster mode: the same with three gateway instances over one PostgreSQL, gateways and banks
// SIGKILLed at random; each client attempt goes to a random instance (a failed-over retry).
//
// Seeded: CHAOS_SEED=123 repeats the same choices: the kill schedule (victims and pauses) comes
// from its own generator, each client worker from its own, so the choices do not depend on how
// the workers interleave (the timing of the real processes still varies). Longer:
// CHAOS_SECONDS=600 CHAOS_SEED=123 npx mocha test/integration/chaos.test.ts   (or `make chaos`,
// `make chaos-cluster` for the cluster mode alone).

const SECONDS = Number(process.env.CHAOS_SECONDS ?? 45);
/** The cluster mode's share of the suite (it runs after the single-gateway one). */
const CLUSTER_SECONDS = Number(process.env.CHAOS_CLUSTER_SECONDS ?? 30);
/** CHAOS_MODE=single or cluster runs one mode alone. */
const MODES = (process.env.CHAOS_MODE ?? 'single,cluster').split(',');
const GATEWAYS = ['g1', 'g2', 'g3'] as const;
const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const BANKS = ['BankA', 'BankB', 'BankC'] as const;
const USERS_PER_BANK = 3;
const OPENING_BALANCE = '200.00';
const WORKERS = 6;

interface Account {
  bank: string;
  username: string;
  metadata?: Metadata;
}

interface Transfer {
  key: string;
  from: Account;
  to: Account;
  amountMinor: bigint;
  /** Every outcome the gateway answered for this key, in order (replays included). */
  answers: Outcome[];
  attempts: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Seeded choices from one generator. */
function chooser(seed: number) {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const uuid = () => {
    const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16)).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${'89ab'[Math.floor(random() * 4)]}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
  };
  return { random, pick, between, uuid };
}

const TIMINGS = {
  gateway: {
    prepareTimeoutMs: 2000, commitRetryIntervalMs: 50, commitRetryMaxIntervalMs: 500,
    phase2CallTimeoutMs: 800, bankCallTimeoutMs: 2000, shutdownGraceMs: 1000,
    leaseMs: 1500, leaseRenewIntervalMs: 500, takeoverIntervalMs: 250,
  },
  bank: { inDoubtQueryAfterMs: 1500, inDoubtCheckIntervalMs: 300, inDoubtRetryMaxIntervalMs: 1500, inDoubtQueryTimeoutMs: 1000 },
};

for (const mode of ['single', 'cluster'] as const) {
  if (!MODES.includes(mode)) continue;
  const seconds = mode === 'single' ? SECONDS : CLUSTER_SECONDS;
  const title = mode === 'single'
    ? 'chaos: random transfers while nodes are SIGKILLed and restarted'
    : 'chaos, cluster mode: three gateways on PostgreSQL, gateways and banks SIGKILLed';
  describe(title, function () {
    this.timeout(seconds * 1000 + 240_000);
    let cluster: Cluster;
    let pg: PostgresServer | undefined;

    before(async () => {
      if (mode === 'cluster') pg = await PostgresServer.start();
      cluster = await Cluster.create({
        banks: [...BANKS],
        ...TIMINGS,
        ...(pg ? { gatewayInstances: GATEWAYS, postgres: { host: '127.0.0.1', port: pg.port, database: 'payments', user: 'payments' } } : {}),
      });
      for (const bank of BANKS) {
        for (let i = 1; i <= USERS_PER_BANK; i++) await cluster.addUser(bank, `u${i}`, 'EUR', OPENING_BALANCE);
      }
      await cluster.reservePorts();
      for (const bank of BANKS) await cluster.startBank(bank);
      if (mode === 'single') await cluster.startGateway();
      else for (const g of GATEWAYS) await cluster.startGatewayInstance(g);
    });

    after(async () => {
      await cluster?.close();
      await pg?.stop();
    });

    it(`keeps money exact and every transfer exactly-once (${seconds} s, seed ${SEED})`, async () => {
      process.stdout.write(`      chaos (${mode}): seed ${SEED} (CHAOS_SEED=${SEED} to repeat), ${seconds} s of faults\n`);
      const gatewayNodes: readonly string[] = mode === 'single' ? ['gateway'] : GATEWAYS;
      /** A client of each gateway instance (one in single mode). */
      const clients = new Map(gatewayNodes.map((g) => [g, mode === 'single' ? gatewayOf(cluster) : cluster.instanceClient(g)]));
      // The checks' reads, at a gateway the killer may have restarted a moment ago.
      const anyGateway = mode === 'single' ? cluster.gatewayReader() : cluster.instanceReader(gatewayNodes[0]!);

      const accounts: Account[] = cluster.users.map((u) => ({ bank: u.bank, username: u.username }));
      for (const a of accounts) {
        const res = await anyGateway.login({ bank: a.bank, username: a.username, password: cluster.passwordOf(a.bank, a.username) });
        a.metadata = bearer(res.accessToken);
      }
      const start = await balances(cluster);
      const transfers: Transfer[] = [];
      const kills: Record<string, number> = Object.fromEntries([...gatewayNodes, ...BANKS].map((n) => [n, 0]));
      let stopWorkers = false;
      let replays = 0;

      /** Sends (or replays) until a gateway answers an outcome; the worker never gives up on a key. */
      async function settle(t: Transfer, c: ReturnType<typeof chooser>): Promise<Outcome> {
        for (;;) {
          t.attempts++;
          let o: Outcome | undefined;
          // Cluster mode: every attempt at a random instance, as a client failing over would.
          const gw = clients.get(c.pick(gatewayNodes))!;
          try {
            o = outcomeOf(await gw.createTransfer(
              { idempotencyKey: t.key, toBank: t.to.bank, toUsername: t.to.username, amountMinor: t.amountMinor, currency: 'EUR' },
              { metadata: t.from.metadata!, deadline: 6000 },
            ));
          } catch (err) {
            o = outcomeOf(undefined, err);
          }
          if (o) {
            t.answers.push(o);
            return o;
          }
          if (t.attempts > 2000) throw new Error(`transfer ${t.key}: no outcome after ${t.attempts} attempts`);
          await sleep(c.between(100, 400));
        }
      }

      async function worker(c: ReturnType<typeof chooser>): Promise<void> {
        while (!stopWorkers) {
          const from = c.pick(accounts);
          let to = c.pick(accounts);
          while (to === from) to = c.pick(accounts);
          const r = c.random();
          // Mostly small amounts; some large ones; some far beyond any balance (refused).
          const amountMinor = BigInt(r < 0.75 ? c.between(1, 3000) : r < 0.92 ? c.between(3000, 15_000) : c.between(100_000, 200_000));
          const t: Transfer = { key: c.uuid(), from, to, amountMinor, answers: [], attempts: 0 };
          transfers.push(t);
          await settle(t, c);
          // Some clients retry a transfer that already has its answer (a lost reply, a nervous user).
          if (c.random() < 0.2) {
            replays++;
            await settle(t, c);
          }
          await sleep(c.between(0, 50));
        }
      }

      const isGateway = (v: string) => gatewayNodes.includes(v);
      const stopNode = (v: string) => (mode === 'single' && v === 'gateway' ? cluster.stopGateway('SIGKILL')
        : isGateway(v) ? cluster.stopGatewayInstance(v, 'SIGKILL') : cluster.stopBank(v, 'SIGKILL'));
      const startNode = (v: string) => (mode === 'single' && v === 'gateway' ? cluster.startGateway()
        : isGateway(v) ? cluster.startGatewayInstance(v) : cluster.startBank(v));

      /** The kill schedule: its own generator, so it follows from the seed alone. */
      async function killer(untilMs: number, c: ReturnType<typeof chooser>): Promise<void> {
        const nodes = [...gatewayNodes, ...BANKS];
        while (Date.now() < untilMs) {
          await sleep(c.between(300, 1500));
          const victims = new Set([c.random() < 0.4 ? c.pick(gatewayNodes) : c.pick(nodes)]);
          if (c.random() < 0.2) victims.add(c.pick(nodes));
          for (const v of victims) {
            kills[v]!++;
            await stopNode(v);
          }
          await sleep(c.between(0, 1500));
          for (const v of victims) await startNode(v);
        }
      }

      const started = Date.now();
      const workers = Array.from({ length: WORKERS }, (_, i) => worker(chooser(SEED + 1 + i)));
      await killer(started + seconds * 1000, chooser(SEED));
      // Every node is up again; let the clients finish what they started.
      stopWorkers = true;
      await Promise.all(workers);
      const settleStarted = Date.now();
      let left: string[] = [];
      try {
        await eventually(async () => (left = await leftovers(cluster)).length === 0, 60_000);
      } catch {
        throw new Error(`seed ${SEED}: the system did not settle: ${left.join('; ')}`);
      }
      const settleMs = Date.now() - settleStarted;

      // Report.
      const byOutcome = new Map<string, number>();
      for (const t of transfers) {
        const o = t.answers[0]!;
        const k = o.kind === 'committed' ? 'committed' : `aborted ${o.reason}`;
        byOutcome.set(k, (byOutcome.get(k) ?? 0) + 1);
      }
      const sameBank = transfers.filter((t) => t.from.bank === t.to.bank).length;
      const retried = transfers.filter((t) => t.attempts > t.answers.length).length;
      process.stdout.write(
        `      chaos (${mode}): ${transfers.length} transfers (${sameBank} same-bank), ${replays} replays, ${retried} retried after a fault; `
        + `kills ${Object.entries(kills).map(([n, c]) => `${n}=${c}`).join(' ')}; settled in ${settleMs} ms\n`
        + `      chaos (${mode}): outcomes ${[...byOutcome].map(([k, c]) => `${k}: ${c}`).join(', ')}\n`,
      );
      const totalKills = Object.values(kills).reduce((a, b) => a + b, 0);
      expect(totalKills, 'kills').to.be.greaterThan(Math.min(5, seconds / 5));
      expect(byOutcome.get('committed') ?? 0, 'committed transfers').to.be.greaterThan(0);

      // 1. Money is conserved, and nothing is held.
      const end = await balances(cluster);
      expect(end.balanceMinor, `seed ${SEED}: sum of balances`).to.equal(start.balanceMinor);
      expect(end.heldMinor).to.equal(0n);

      // 2. Each key has exactly one outcome: every answer (replays included) agrees, and so does GetTransfer.
      const committed = new Map<string, Transfer>();
      for (const t of transfers) {
        const first = t.answers[0]!;
        for (const a of t.answers) expect(a, `seed ${SEED}: key ${t.key} answered differently`).to.deep.equal(first);
        expect(['IDEMPOTENCY_KEY_REUSED', 'TRANSFER_IN_PROGRESS']).to.not.include((first as { reason?: string }).reason);
        const got = (await anyGateway.getTransfer({ idempotencyKey: t.key }, { metadata: t.from.metadata! })).transfer!;
        if (first.kind === 'committed') {
          expect(got.status, t.key).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
          expect(got.transactionId).to.equal(first.txId);
          committed.set(first.txId, t);
        } else {
          expect(got.status, t.key).to.equal(TransferStatus.TRANSFER_STATUS_ABORTED);
          expect(got.failureReason).to.equal(first.reason);
        }
      }

      // 3. Every committed transfer is applied exactly once at both banks, and every history entry
      //    belongs to a committed transfer (with its account, direction and amount).
      const seen = new Map<string, string[]>();
      const expected = new Map<string, bigint>();
      for (const a of accounts) {
        let net = 0n;
        for (const e of await historyFor(cluster, a.bank, a.username)) {
          const t = committed.get(e.txId);
          expect(t, `seed ${SEED}: ${a.username}@${a.bank} has history for ${e.txId}, which no client saw committed`).to.not.equal(undefined);
          const debit = e.direction === EntryDirection.ENTRY_DIRECTION_DEBIT;
          const party = debit ? t!.from : t!.to;
          expect([party.bank, party.username, e.amountMinor]).to.deep.equal([a.bank, a.username, t!.amountMinor]);
          seen.set(e.txId, [...(seen.get(e.txId) ?? []), debit ? 'debit' : 'credit']);
          net += debit ? -e.amountMinor : e.amountMinor;
        }
        expected.set(`${a.username}@${a.bank}`, start.byUser.get(`${a.username}@${a.bank}`)! + net);
      }
      for (const txId of committed.keys()) {
        expect((seen.get(txId) ?? []).sort(), `seed ${SEED}: legs of ${txId}`).to.deep.equal(['credit', 'debit']);
      }
      // 4. Each balance is its opening balance plus its own history.
      for (const [who, balance] of end.byUser) expect(balance, who).to.equal(expected.get(who));
    });
  });
}

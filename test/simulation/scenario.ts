import Database from 'better-sqlite3';
import { Ledger } from '../../src/bank/ledger.js';
import { ConfigSchema } from '../../src/config/schema.js';
import { backoffMs, sleep, type Clock } from '../../src/core/clock.js';
import { AppError, errorText } from '../../src/core/errors.js';
import { newTimeOrderedId } from '../../src/core/ids.js';
import { rng, type Random } from '../../src/core/random.js';
import { resetTestBugs, testBugs, type TestBugs } from '../../src/core/test-bugs.js';
import type { AccountRef } from '../../src/core/transfer.js';
import { validateCreateTransfer } from '../../src/gateway/validate.js';
import { isBug, SimNetwork, type NetFault, type NetworkProfile } from './network.js';
import { BankNode, GatewayNode, SimDisk, simBankClients, simDecisionSource, type Observer, type SimLimits } from './nodes.js';
import { SimTime, type Incarnation } from './sim-clock.js';

// One simulated scenario, fully determined by its seed: 2-3 banks, a gateway and a few clients,
// a fault phase (crashes of every node at any step, lost / duplicated / delayed / reordered
// messages, partitions), then a calm phase in which everything must settle. Invariants are checked
// when things happen (a Commit leaving, a bank answering) and at the end.

export type Invariant =
  | 'decision-durable-before-commit'
  | 'abort-final-at-bank'
  | 'one-decision'
  | 'holds-match-prepared-legs'
  | 'money-conserved'
  | 'applied-exactly-once'
  | 'settles'
  | 'one-outcome-per-key'
  | 'node-assertion';

export interface Violation {
  readonly invariant: Invariant;
  readonly message: string;
  readonly step: number;
  readonly atMs: number;
  /** The last trace lines about the transfer (or key) concerned. */
  readonly trace: readonly string[];
}

export interface ScenarioResult {
  readonly seed: number;
  readonly hash: string;
  readonly steps: number;
  readonly simMs: number;
  readonly transfers: number;
  readonly crashes: number;
  /** Group commits of the gateway's log that failed because its disk failed writes. */
  readonly failedLogWrites: number;
  /** The same of the banks' ledgers, all banks together. */
  readonly failedLedgerWrites: number;
  readonly faults: Readonly<Record<NetFault, number>>;
  readonly checks: number;
  readonly violation: Violation | undefined;
}

export interface ScenarioOptions {
  /** Broken variants to switch on for this scenario (tests only). */
  readonly bugs?: Partial<TestBugs>;
}

class SimViolation extends Error {
  override name = 'SimViolation';
  constructor(readonly invariant: Invariant, message: string, readonly subject?: string) {
    super(message);
  }
}

const START_MS = 1_767_225_600_000;
const CURRENCY = 'EUR';
const OPENING_MINOR = 1000n;
const USERS = ['alice', 'bob', 'carol'] as const;
/** After the faults stop, everything must be settled within this much simulated time. */
const SETTLE_BOUND_MS = 60_000;
const CLIENT_CALL_TIMEOUT_MS = 6000;
/** A node that could not start (its disk failing writes) is started again after this long. */
const START_RETRY_MS = 500;
const TRANSIENT = new Set(['TRANSFER_IN_PROGRESS', 'SHUTTING_DOWN', 'OVERLOADED', 'INTERNAL']);

const BASE_CONFIG = ConfigSchema.parse({
  gateway: {
    prepareTimeoutMs: 2000, phase2CallTimeoutMs: 1000,
    commitRetryIntervalMs: 100, commitRetryMaxIntervalMs: 2000,
  },
  bank: {
    inDoubtQueryAfterMs: 4000, inDoubtCheckIntervalMs: 2000, inDoubtQueryTimeoutMs: 1000, inDoubtRetryMaxIntervalMs: 4000,
  },
});

type Answer =
  | { readonly kind: 'committed'; readonly txId: string }
  | { readonly kind: 'aborted'; readonly reason: string }
  | { readonly kind: 'reused' }
  | { readonly kind: 'retry'; readonly why: string };

interface KeyRecord {
  readonly owner: AccountRef;
  readonly key: string;
  readonly to: AccountRef;
  readonly amountMinor: bigint;
  readonly answers: Answer[];
}

interface Client extends Incarnation {
  readonly account: AccountRef;
  readonly clock: Clock;
  readonly random: Random;
}

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

function between(random: Random, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

export async function runScenario(seed: number, options: ScenarioOptions = {}): Promise<ScenarioResult> {
  resetTestBugs();
  Object.assign(testBugs, options.bugs ?? {});
  const world = new World(seed);
  const listeners = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  const onUnhandled = (err: unknown) => world.bug(err, 'a node (unhandled rejection)');
  process.on('unhandledRejection', onUnhandled);
  try {
    return await world.run();
  } finally {
    process.removeListener('unhandledRejection', onUnhandled);
    for (const l of listeners) process.on('unhandledRejection', l);
    world.close();
    resetTestBugs();
  }
}

let openingLedgerImage: Buffer | undefined;

/**
 * Every bank's ledger at the start of a scenario: the users with their opening balances, and a USD
 * account (an EUR credit to it is refused: CURRENCY_MISMATCH). Made once per process through the
 * real Ledger; each bank's disk starts from a copy.
 */
function openingLedger(): Buffer {
  if (!openingLedgerImage) {
    const db = new Database(':memory:');
    const ledger = Ledger.over(db, 'opening ledger', () => START_MS);
    for (const username of USERS) {
      ledger.createAccount({ username, passwordHash: 'x', currency: CURRENCY, balanceMinor: OPENING_MINOR });
    }
    ledger.createAccount({ username: 'dave', passwordHash: 'x', currency: 'USD', balanceMinor: OPENING_MINOR });
    openingLedgerImage = db.serialize();
    ledger.close();
  }
  return openingLedgerImage;
}

class World implements Observer {
  readonly time = new SimTime(START_MS);
  private readonly random: Random;
  private readonly net: SimNetwork;
  private readonly gateway: GatewayNode;
  private readonly banks = new Map<string, BankNode>();
  private readonly inspectors = new Map<string, Inspector>();
  private readonly clients: Client[] = [];
  private readonly keys: KeyRecord[] = [];
  /** What each bank last said about each transaction: 'yes' | 'committed' | 'aborted'. */
  private readonly bankSaid = new Map<string, string>();
  private readonly limits: SimLimits;
  private violation: Violation | undefined;
  private crashes = 0;
  /** Per node, the spells of its disk failing writes open now (they may overlap). */
  private readonly diskFailing = new Map<GatewayNode | BankNode, number>();
  private checks = 0;
  private clientsRunning = 0;
  private readonly faultMs: number;

  constructor(readonly seed: number) {
    this.random = rng(seed);
    const r = this.random;
    const profile: NetworkProfile = {
      lossP: 0.05 + r() * 0.3,
      duplicateP: 0.02 + r() * 0.28,
      delayP: 0.02 + r() * 0.28,
      spikeMs: between(r, 500, 4000),
      baseDelayMs: between(r, 1, 5),
      jitterMs: between(r, 0, 30),
    };
    this.net = new SimNetwork(this.time, rng(seed ^ 0x5bd1e995), profile, (err, where) => this.bug(err, where));
    this.time.onError = (err, where) => this.bug(err, where);
    this.faultMs = between(r, 6000, 16_000);
    this.limits = {
      gateway: {
        ...BASE_CONFIG.gateway, bankBatchWindowMs: pick(r, [0, 0, 2]), persistBatchWindowMs: pick(r, [0, 0, 1]),
        // Mostly the default (COMMITTED at the durable decision), sometimes a wait for the acks.
        replyAckWaitMs: pick(r, [0, 0, 1000]),
      },
      bank: BASE_CONFIG.bank,
    };
    this.gateway = new GatewayNode(this.time, new SimDisk('gateway'), this.limits.gateway,
      () => simBankClients(this.net, this.gateway, this.banks, this), seed);
    const bankCount = between(r, 2, 3);
    for (let i = 0; i < bankCount; i++) {
      const name = `Bank${String.fromCharCode(65 + i)}`;
      const decisions = simDecisionSource(this.net, () => this.banks.get(name)!, this.gateway, this.limits.bank.inDoubtQueryTimeoutMs);
      this.banks.set(name, new BankNode(name, this.time, new SimDisk(name, openingLedger()), this.limits.bank, decisions, seed));
    }
  }

  async run(): Promise<ScenarioResult> {
    this.setUp();
    await this.gateway.start();
    this.planClients();
    this.planFaults();
    const afterEach = () => undefined;
    const stopped = () => this.violation !== undefined;
    // Fault phase.
    await this.time.runUntil(START_MS + this.faultMs, afterEach, stopped);
    if (!this.violation) {
      this.time.note('faults stop');
      this.net.healAll();
      for (const node of this.diskFailing.keys()) node.disk.setFailing(false);
      this.diskFailing.clear();
      for (const node of this.nodes()) if (!node.up) await this.restart(node);
      const bound = this.time.nowMs + SETTLE_BOUND_MS;
      let nextCheckMs = 0;
      const done = () => {
        if (this.violation) return true;
        if (this.clientsRunning > 0 || this.time.nowMs < nextCheckMs) return false;
        nextCheckMs = this.time.nowMs + 250;
        return this.unsettled() === undefined;
      };
      const finished = !(await this.time.runUntil(bound, afterEach, done));
      if (!this.violation) {
        if (!finished) {
          const what = this.clientsRunning > 0 ? `${this.clientsRunning} client(s) still without a final answer` : this.unsettled();
          this.violate('settles', `not settled ${SETTLE_BOUND_MS} ms after the faults stopped: ${what}`, this.unsettledSubject());
        } else {
          this.checkFinal();
        }
      }
    }
    return {
      seed: this.seed,
      hash: this.time.traceHash(),
      steps: this.time.steps,
      simMs: this.time.nowMs - START_MS,
      transfers: this.keys.length,
      crashes: this.crashes,
      failedLogWrites: this.gateway.failedLogWrites,
      failedLedgerWrites: [...this.banks.values()].reduce((n, b) => n + b.failedLedgerWrites, 0),
      faults: { ...this.net.faults },
      checks: this.checks,
      violation: this.violation,
    };
  }

  close(): void {
    for (const node of this.nodes()) {
      if (node.up) node.crash();
      node.disk.close();
    }
  }

  private nodes(): (GatewayNode | BankNode)[] {
    return [this.gateway, ...this.banks.values()];
  }

  private setUp(): void {
    for (const bank of this.banks.values()) {
      bank.start();
      this.inspectors.set(bank.name, new Inspector(bank.disk));
    }
  }

  private async restart(node: GatewayNode | BankNode): Promise<void> {
    if (node.up) return;
    this.time.note(`restart ${node.name}`);
    try {
      await node.start();
    } catch (err) {
      if ((this.diskFailing.get(node) ?? 0) > 0) {
        // A node whose disk fails writes may not start (its database cannot be opened for
        // writing, or recovery cannot write): it exits, and its supervisor tries again later.
        this.time.note(`${node.name} could not start: ${errorText(err)}`);
        node.crash();
        this.time.at(START_RETRY_MS, undefined, `restart? ${node.name}`, () => void this.restart(node));
        return;
      }
      this.bug(err, `${node.name} restart`);
    }
  }

  // ---- faults ----

  private planFaults(): void {
    const r = this.random;
    const crashCount = between(r, 4, 9);
    for (let i = 0; i < crashCount; i++) {
      const atMs = Math.floor(r() * this.faultMs);
      this.time.at(atMs, undefined, 'crash?', () => {
        const node = pick(this.random, this.nodes());
        if (!node.up) return;
        this.crashes++;
        this.time.note(`CRASH ${node.name}`);
        node.crash();
        // A scheduled event cannot wait; restart() records its own failure as a bug and never rejects.
        this.time.at(between(this.random, 0, 1500), undefined, `restart? ${node.name}`, () => void this.restart(node));
      });
    }
    // A node's disk fails every write for a while (read-only, as after an I/O error); reads still
    // work. The gateway's log cannot record begins, decisions or phase-2 progress; a bank's ledger
    // cannot record holds, commits, aborts or resolutions.
    const spells: (GatewayNode | BankNode)[] = [
      ...Array.from({ length: between(r, 1, 3) }, () => this.gateway),
      ...Array.from({ length: between(r, 1, 2) }, () => pick(r, [...this.banks.values()])),
    ];
    for (const node of spells) {
      const atMs = Math.floor(r() * this.faultMs);
      const forMs = between(r, 100, 2000);
      this.time.at(atMs, undefined, `${node.name} disk fails writes`, () => {
        this.diskFailing.set(node, (this.diskFailing.get(node) ?? 0) + 1);
        node.disk.setFailing(true);
        this.time.at(forMs, undefined, `${node.name} disk writes again`, () => {
          const open = Math.max(0, (this.diskFailing.get(node) ?? 0) - 1);
          this.diskFailing.set(node, open);
          node.disk.setFailing(open > 0);
        });
      });
    }
    const partitions = between(r, 1, 6);
    for (let i = 0; i < partitions; i++) {
      const a = pick(r, [...this.banks.keys(), ...this.clients.map((c) => c.name)]);
      const atMs = Math.floor(r() * this.faultMs);
      const forMs = between(r, 200, 3000);
      this.time.at(atMs, undefined, `partition gateway|${a}`, () => {
        this.net.partition('gateway', a);
        this.time.at(forMs, undefined, `reconnect gateway|${a}`, () => this.net.reconnect('gateway', a));
      });
    }
  }

  // ---- clients ----

  private planClients(): void {
    const r = this.random;
    const bankNames = [...this.banks.keys()];
    const count = between(r, 3, 6);
    for (let i = 0; i < count; i++) {
      const client: Client = {
        name: `client${i}`,
        epoch: 0,
        up: true,
        account: { bank: pick(r, bankNames), username: USERS[i % USERS.length]! },
        clock: undefined as unknown as Clock,
        random: rng(this.seed * 31 + i),
      };
      (client as { clock: Clock }).clock = this.time.clockOf(client);
      this.clients.push(client);
    }
    for (const client of this.clients) {
      this.clientsRunning++;
      const requests = between(r, 4, 9);
      const start = between(r, 0, 500);
      this.time.at(start, client, `${client.name} starts`, () => {
        this.clientLoop(client, requests).then(
          () => { this.clientsRunning--; },
          (err: unknown) => this.bug(err, client.name),
        );
      });
    }
  }

  private recipient(client: Client): { to: AccountRef; amountMinor: bigint } {
    const r = client.random;
    const bankNames = [...this.banks.keys()];
    const kind = r();
    const amountMinor = BigInt(between(r, 1, 300));
    const other = (bank: string): AccountRef => {
      const candidates = USERS.filter((u) => bank !== client.account.bank || u !== client.account.username);
      return { bank, username: pick(r, candidates) };
    };
    if (kind < 0.45) return { to: other(pick(r, bankNames.filter((b) => b !== client.account.bank))), amountMinor };
    if (kind < 0.7) return { to: other(client.account.bank), amountMinor };
    if (kind < 0.8) return { to: other(pick(r, bankNames)), amountMinor: BigInt(between(r, 1001, 5000)) };
    if (kind < 0.88) return { to: { bank: pick(r, bankNames), username: 'nobody' }, amountMinor };
    if (kind < 0.94) return { to: { bank: pick(r, bankNames), username: 'dave' }, amountMinor };
    return { to: { bank: 'BankZ', username: 'zed' }, amountMinor };
  }

  private async clientLoop(client: Client, requests: number): Promise<void> {
    const r = client.random;
    for (let i = 0; i < requests && !this.violation; i++) {
      await sleep(client.clock, between(r, 0, 400));
      const { to, amountMinor } = this.recipient(client);
      const record: KeyRecord = {
        owner: client.account,
        key: newTimeOrderedId(this.time.nowMs, r),
        to,
        amountMinor,
        answers: [],
      };
      this.keys.push(record);
      // Sometimes two copies race; then maybe a replay of the finished key, or a reuse of it for
      // another amount (which must be refused).
      const copies = r() < 0.15 ? 2 : 1;
      await Promise.all(Array.from({ length: copies }, () => this.untilFinal(client, record, amountMinor)));
      if (r() < 0.3) {
        await sleep(client.clock, between(r, 0, 1000));
        await this.untilFinal(client, record, amountMinor);
      }
      if (r() < 0.1) await this.untilFinal(client, record, amountMinor + 1n);
    }
  }

  /** Sends the request with the same key until a final answer comes back. */
  private async untilFinal(client: Client, record: KeyRecord, amountMinor: bigint): Promise<void> {
    for (let attempt = 1; !this.violation; attempt++) {
      const answer = await this.send(client, record, amountMinor);
      if (answer.kind === 'reused') {
        if (amountMinor === record.amountMinor) this.violate('one-outcome-per-key', `key ${record.key} was refused as reused for its own parameters`, record.key);
        return;
      }
      if (answer.kind !== 'retry') {
        // A request the service's validation refuses (an unknown bank) is refused so whatever its key.
        const refused = answer.kind === 'aborted' && answer.reason === 'BANK_NOT_FOUND';
        if (amountMinor !== record.amountMinor && !refused) {
          this.violate('one-outcome-per-key', `key ${record.key} reused for another amount was answered ${answer.kind}`, record.key);
          return;
        }
        if (amountMinor === record.amountMinor) record.answers.push(answer);
        return;
      }
      await sleep(client.clock, backoffMs(attempt, 200, 3000, client.random));
    }
  }

  private send(client: Client, record: KeyRecord, amountMinor: bigint): Promise<Answer> {
    const label = `create ${record.key} ${client.account.username}@${client.account.bank}->${record.to.username}@${record.to.bank} ${amountMinor}`;
    const request = { idempotencyKey: record.key, toBank: record.to.bank, toUsername: record.to.username, amountMinor, currency: CURRENCY };
    return this.net.call(client, this.gateway, 'CreateTransfer', label, CLIENT_CALL_TIMEOUT_MS, async (): Promise<Answer> => {
      const engine = this.gateway.engine;
      if (!engine) return { kind: 'retry', why: 'gateway down' };
      // The gateway service's own validation first: a bank discovery does not know (BankZ) is
      // refused before anything is recorded, as in production.
      const input = validateCreateTransfer(request, client.account, {
        maxTransferAmountMinor: BigInt(BASE_CONFIG.gateway.maxTransferAmountMinor),
        isKnownBank: (bank) => this.banks.has(bank),
      });
      if (!input.ok) return { kind: 'aborted', reason: input.reason };
      try {
        const view = await engine.create(client.account, input.value);
        return { kind: 'committed', txId: view.transactionId };
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        if (err.reason === 'IDEMPOTENCY_KEY_REUSED') return { kind: 'reused' };
        return TRANSIENT.has(err.reason) ? { kind: 'retry', why: err.reason } : { kind: 'aborted', reason: err.reason };
      }
    }).then(
      (answer) => {
        this.time.note(`answer ${record.key} ${answer.kind}${answer.kind === 'committed' ? ` ${answer.txId}` : ''}`);
        return answer;
      },
      (err: unknown): Answer => ({ kind: 'retry', why: err instanceof Error ? err.message : String(err) }),
    );
  }

  // ---- invariants when things happen ----

  commitSent(txIds: readonly string[]): void {
    const store = this.gateway.store;
    for (const txId of txIds) {
      this.checks++;
      const row = store?.findById(txId);
      if (row?.state !== 'committing' && row?.state !== 'committed') {
        this.violate('decision-durable-before-commit', `Commit of ${txId} sent while its durable state is ${row?.state ?? 'absent'}`, txId);
      }
    }
  }

  bankAnswered(bank: string, kind: 'prepare' | 'commit' | 'abort', txIds: readonly string[], answers: readonly string[]): void {
    txIds.forEach((txId, i) => {
      this.checks++;
      const key = `${bank}/${txId}`;
      const before = this.bankSaid.get(key);
      const answer = answers[i] as string;
      if (kind === 'prepare') {
        if (answer !== 'yes') return;
        if (before === 'aborted') this.violate('abort-final-at-bank', `${bank} voted YES for ${txId} after answering it aborted`, txId);
        else if (before === undefined) this.bankSaid.set(key, 'yes');
        return;
      }
      if (before !== undefined && before !== 'yes' && before !== answer) {
        this.violate('one-decision', `${bank} answered ${answer} for ${txId} after answering ${before}`, txId);
      }
      this.bankSaid.set(key, answer);
    });
    this.checkHolds(bank);
  }

  /**
   * At one bank: every hold is the sum of its prepared debit legs; no balance or available amount
   * below zero. Skipped when the bank wrote no row since the last check (a repeated answer).
   */
  private checkHolds(bank: string): void {
    const inspector = this.inspectors.get(bank)!;
    if (!inspector.changedSinceLastLook()) return;
    this.checks++;
    const rows = inspector.sql().holds.all() as { username: string; balance: bigint; held: bigint; open: bigint }[];
    for (const a of rows) {
      if (a.balance < 0n || a.held < 0n || a.held > a.balance) {
        this.violate('holds-match-prepared-legs', `${a.username}@${bank}: balance ${a.balance}, held ${a.held}`);
      } else if (a.held !== a.open) {
        this.violate('holds-match-prepared-legs', `${a.username}@${bank}: held ${a.held} but prepared debit legs sum to ${a.open}`);
      }
    }
  }

  // ---- invariants at the end ----

  private unsettled(): string | undefined {
    this.checks++;
    const unfinished = this.gateway.store?.unfinished() ?? [];
    if (unfinished.length > 0) return `gateway transfer ${unfinished[0]!.tx.id} is ${unfinished[0]!.state}`;
    for (const [name, db] of this.inspectors) {
      const prepared = db.sql().prepared.get() as { id: string } | undefined;
      if (prepared) return `${name} holds transaction ${prepared.id} prepared`;
      const held = db.sql().held.get() as { held: bigint };
      if (held.held !== 0n) return `${name} still holds ${held.held}`;
    }
    return undefined;
  }

  private unsettledSubject(): string | undefined {
    const row = this.gateway.store?.unfinished()[0];
    if (row) return row.tx.id;
    for (const db of this.inspectors.values()) {
      const prepared = db.sql().prepared.get() as { id: string } | undefined;
      if (prepared) return prepared.id;
    }
    return this.keys.find((k) => k.answers.length === 0)?.key;
  }

  private checkFinal(): void {
    const gateway = this.gateway.disk.read();
    interface GwRow { tx_id: string; owner_bank: string; owner_username: string; idempotency_key: string; to_bank: string; to_username: string; amount_minor: bigint; state: string; failure_reason: string | null }
    const rows = gateway.prepare('SELECT * FROM transfers').safeIntegers(true).all() as GwRow[];
    const byTx = new Map(rows.map((r) => [r.tx_id, r]));
    const byKey = new Map(rows.map((r) => [`${r.owner_bank}/${r.owner_username}/${r.idempotency_key}`, r]));

    // Money: per bank and currency, nothing created or lost.
    const balances = new Map<string, bigint>();
    let total = 0n;
    for (const [bank, db] of this.inspectors) {
      for (const a of db.read(`SELECT username, balance_minor AS balance FROM accounts WHERE currency = ?`, CURRENCY) as { username: string; balance: bigint }[]) {
        balances.set(`${a.username}@${bank}`, a.balance);
        total += a.balance;
      }
    }
    this.checks++;
    const expectedTotal = OPENING_MINOR * BigInt(USERS.length * this.banks.size);
    if (total !== expectedTotal) this.violate('money-conserved', `the banks hold ${total} ${CURRENCY} in all, not ${expectedTotal}`);

    // Every committed transfer applied once at each of its banks; an aborted one at none.
    const applied = new Map<string, string[]>();
    const committedAt = new Map<string, string[]>();
    for (const [bank, db] of this.inspectors) {
      for (const h of db.read('SELECT tx_id, username, direction, amount_minor FROM history') as { tx_id: string; username: string; direction: string; amount_minor: bigint }[]) {
        const list = applied.get(h.tx_id) ?? [];
        list.push(`${h.direction}:${h.username}@${bank}:${h.amount_minor}`);
        applied.set(h.tx_id, list);
      }
      for (const t of db.read(`SELECT id, state FROM transactions`) as { id: string; state: string }[]) {
        if (t.state !== 'committed') continue;
        committedAt.set(t.id, [...(committedAt.get(t.id) ?? []), bank]);
      }
    }
    for (const row of rows) {
      this.checks++;
      const got = (applied.get(row.tx_id) ?? []).sort().join(' ');
      if (row.state === 'committed') {
        const want = [`credit:${row.to_username}@${row.to_bank}:${row.amount_minor}`, `debit:${row.owner_username}@${row.owner_bank}:${row.amount_minor}`].sort().join(' ');
        if (got !== want) this.violate('applied-exactly-once', `committed transfer ${row.tx_id}: applied [${got}], expected [${want}]`, row.tx_id);
      } else if (got !== '' || committedAt.has(row.tx_id)) {
        this.violate('one-decision', `transfer ${row.tx_id} is ${row.state} at the gateway but committed at ${committedAt.get(row.tx_id)?.join(', ')} [${got}]`, row.tx_id);
      }
    }
    for (const [txId, banks] of committedAt) {
      const row = byTx.get(txId);
      if (row?.state !== 'committed') this.violate('one-decision', `${banks.join(', ')} committed ${txId}, which the gateway has ${row?.state ?? 'no record of'}`, txId);
    }

    // Every key: one outcome, every answer agrees with it; balances are one transfer per key.
    const model = new Map<string, bigint>();
    for (const bank of this.banks.keys()) for (const u of USERS) model.set(`${u}@${bank}`, OPENING_MINOR);
    for (const k of this.keys) {
      this.checks++;
      const row = byKey.get(`${k.owner.bank}/${k.owner.username}/${k.key}`);
      if (!row) {
        // Refused by validation (an unknown bank): nothing recorded, every answer that refusal.
        if (k.answers.length > 0 && k.answers.every((a) => a.kind === 'aborted' && a.reason === 'BANK_NOT_FOUND')) continue;
        this.violate('one-outcome-per-key', `key ${k.key} was answered ${k.answers.map((a) => a.kind).join(', ')} but the gateway has no transfer for it`, k.key);
        continue;
      }
      for (const a of k.answers) {
        const agrees = a.kind === 'committed'
          ? row.state === 'committed' && a.txId === row.tx_id
          : a.kind === 'aborted' && row.state === 'aborted' && a.reason === row.failure_reason;
        if (!agrees) {
          this.violate('one-outcome-per-key', `key ${k.key}: a client was answered ${JSON.stringify(a)}, the gateway holds ${row.state} ${row.tx_id} ${row.failure_reason ?? ''}`, k.key);
        }
      }
      if (row.state === 'committed') {
        const from = `${k.owner.username}@${k.owner.bank}`;
        const to = `${k.to.username}@${k.to.bank}`;
        model.set(from, model.get(from)! - k.amountMinor);
        model.set(to, model.get(to)! + k.amountMinor);
      }
    }
    for (const [account, want] of model) {
      this.checks++;
      const got = balances.get(account);
      if (got !== want) this.violate('one-outcome-per-key', `${account} has ${got}, but one transfer per key gives ${want}`);
    }
  }

  // ---- reporting ----

  bug(err: unknown, where: string): void {
    if (err instanceof SimViolation) {
      this.violate(err.invariant, err.message, err.subject);
      return;
    }
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    const subject = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.exec(message)?.[0];
    this.violate('node-assertion', `${where}: ${message}${isBug(err) ? '' : ` (${err instanceof Error ? err.stack : ''})`}`, subject);
  }

  violate(invariant: Invariant, message: string, subject?: string): void {
    if (this.violation) return;
    const lines = subject ? this.time.trace.filter((l) => l.includes(subject)) : this.time.trace;
    this.violation = { invariant, message, step: this.time.steps, atMs: this.time.nowMs - START_MS, trace: lines.slice(-25) };
    this.time.note(`VIOLATION ${invariant}: ${message}`);
  }
}

/** Reads what a bank's ledger has committed, whatever the node does (SimDisk.read). */
class Inspector {
  private db: Database.Database | undefined;
  private statements: ReturnType<typeof inspectorStatements> | undefined;
  private lookedAt: { sql: ReturnType<typeof inspectorStatements>; changes: number } | undefined;

  constructor(private readonly disk: SimDisk) {}

  /** The checks' statements, on the database the disk reads now (prepared again after a restart). */
  sql(): ReturnType<typeof inspectorStatements> {
    const db = this.disk.read();
    if (db !== this.db || !this.statements) {
      this.db = db;
      this.statements = inspectorStatements(db);
    }
    return this.statements;
  }

  /**
   * Whether the bank changed a row since this was last asked (SQLite's total_changes() of the
   * node's connection; a restart opens a new connection, which counts as a change).
   */
  changedSinceLastLook(): boolean {
    const sql = this.sql();
    const changes = sql.totalChanges.get() as number;
    const changed = sql !== this.lookedAt?.sql || changes !== this.lookedAt.changes;
    this.lookedAt = { sql, changes };
    return changed;
  }

  read(query: string, ...params: unknown[]): unknown[] {
    return this.disk.read().prepare(query).safeIntegers(true).all(...params);
  }
}

function inspectorStatements(db: Database.Database) {
  return {
    holds: db.prepare(`SELECT a.username AS username, a.balance_minor AS balance, a.held_minor AS held,
        COALESCE((SELECT SUM(l.amount_minor) FROM legs l JOIN transactions t ON t.id = l.tx_id
          WHERE l.username = a.username AND l.kind = 'debit' AND t.state = 'prepared'), 0) AS open
      FROM accounts a`).safeIntegers(true),
    prepared: db.prepare(`SELECT id FROM transactions WHERE state = 'prepared' LIMIT 1`).safeIntegers(true),
    held: db.prepare('SELECT COALESCE(SUM(held_minor), 0) AS held FROM accounts').safeIntegers(true),
    totalChanges: db.prepare('SELECT total_changes()').pluck().safeIntegers(false),
  };
}

export function formatViolation(seed: number, v: Violation): string {
  return [
    `simulation seed ${seed}: invariant ${v.invariant} violated at step ${v.step} (t=${v.atMs} ms)`,
    `  ${v.message}`,
    `  replay: SIM_SEED=${seed} make sim`,
    '  trace of the transfer:',
    ...v.trace.map((l) => `    ${l}`),
  ].join('\n');
}

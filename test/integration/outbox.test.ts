import { expect } from 'chai';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Cluster, eventually } from '../helpers/cluster.js';
import { ROOT, runBin } from '../helpers/processes.js';
import { EntryDirection } from '../../src/gen/payments/v1/gateway.js';

// The client's offline outbox against real gateway and bank processes: payments made while the
// gateway is down are queued durably and sent exactly once later, also across client crashes
// (SIGKILL) and an expired session. The sum of all balances never changes.

/** Token lifetime in the expired-session scenario. */
const SESSION_TTL_SECONDS = 8;

const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

function keyOf(stdout: string): string {
  const key = /key: (\S+)/.exec(stdout)?.[1];
  expect(key, stdout).to.match(UUID_RE);
  return key!;
}

class ClientRunner {
  constructor(private readonly cluster: Cluster) {}

  run(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
    return runBin('client', ['--config', this.cluster.configPath, ...args], { ...options, timeoutMs: 60_000 });
  }

  async login(bank: string, user: string, extra: string[] = []) {
    const r = await this.run(['login', bank, user, '--password-stdin', ...extra], { input: `${this.cluster.passwordOf(bank, user)}\n` });
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    return r;
  }

  async queueTransfer(toBank: string, toUser: string, amount: string): Promise<string> {
    const r = await this.run(['transfer', toBank, toUser, amount]);
    expect(r.code, r.stdout + r.stderr).to.equal(5);
    expect(r.stdout).to.include('queued: will be sent when the gateway is reachable');
    return keyOf(r.stdout);
  }

  async queueList(): Promise<Array<Record<string, any>>> {
    const r = await this.run(['queue', 'list', '--json']);
    expect(r.code, r.stderr).to.equal(0);
    return JSON.parse(r.stdout).entries;
  }

  /**
   * Starts `queue run --until-empty` and SIGKILLs it as soon as its output matches `killAt` (and
   * `thenWait` resolved). Resolves with what it printed.
   */
  killWhen(killAt: RegExp, env: NodeJS.ProcessEnv = {}, thenWait?: () => Promise<void>): Promise<string> {
    const child = spawn(path.join(ROOT, 'bin', 'client'), ['--config', this.cluster.configPath, 'queue', 'run', '--until-empty'], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`client never printed ${killAt}:\n${out}`));
      }, 30_000);
      let matched = false;
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (matched || !killAt.test(out)) return;
        matched = true;
        (thenWait ? thenWait() : Promise.resolve()).then(() => child.kill('SIGKILL'), (err: unknown) => {
          child.kill('SIGKILL');
          reject(err);
        });
      });
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (signal !== 'SIGKILL') reject(new Error(`client exited (${code ?? signal}) before it was killed:\n${out}`));
        else resolve(out);
      });
    });
  }
}

/** Debits in alice's history (from the bank's own ledger, through the gateway). */
async function debitsOf(cluster: Cluster, bank: string, user: string): Promise<bigint[]> {
  const { metadata } = await cluster.login(bank, user);
  const page = await cluster.gatewayClient().listTransactions({ pageSize: 100, pageToken: '' }, { metadata });
  return page.entries.filter((e) => e.direction === EntryDirection.ENTRY_DIRECTION_DEBIT).map((e) => e.amountMinor);
}

describe('client offline outbox (real gateway and banks)', function () {
  this.timeout(180_000);

  describe('gateway down, client crashes', () => {
    let cluster: Cluster;
    let client: ClientRunner;
    let total: bigint;

    before(async () => {
      cluster = await Cluster.create({ banks: ['BankA', 'BankB'] });
      await cluster.addUser('BankA', 'alice', 'EUR', '100.00');
      await cluster.addUser('BankB', 'bob', 'EUR', '50.00');
      await cluster.startAll();
      client = new ClientRunner(cluster);
      total = (await cluster.totals()).balanceMinor;
    });

    after(async () => {
      await cluster?.close();
    });

    async function expectTotalsUnchanged(): Promise<void> {
      const t = await cluster.totals();
      expect(t.balanceMinor).to.equal(total);
    }

    it('queues transfers while the gateway is down and applies each exactly once when it is back', async () => {
      await client.login('BankA', 'alice');
      await cluster.stopGateway();
      const keys: string[] = [];
      for (const amount of ['1.00', '2.00', '3.00']) keys.push(await client.queueTransfer('BankB', 'bob', amount));
      // A bounded outbox refuses the next payment clearly, and sends nothing.
      const full = await client.run(['transfer', 'BankB', 'bob', '4.00', '--set', 'client.outboxMaxEntries=3']);
      expect(full.code).to.equal(1);
      expect(full.stderr).to.match(/the offline queue is full \(3 payments waiting.*\(OUTBOX_FULL\)/);
      const listed = await client.queueList();
      expect(listed.map((e) => e.idempotencyKey)).to.deep.equal(keys);
      expect(listed.every((e) => e.state === 'pending' && e.sent === false)).to.equal(true);
      // queue run while the gateway is still down: bounded, nothing lost.
      const early = await client.run(['queue', 'run', '--until-empty', '--timeout-ms', '1000']);
      expect(early.code, early.stdout).to.equal(5);
      expect(early.stdout).to.match(/#1 .* still queued: cannot reach the gateway/);

      await cluster.startGateway();
      await expectTotalsUnchanged();
      const run = await client.run(['queue', 'run', '--until-empty', '--timeout-ms', '30000']);
      expect(run.code, run.stdout + run.stderr).to.equal(0);
      // Reported, in order.
      const reported = [...run.stdout.matchAll(/#(\d) \(key (\S+)\) committed: (\S+) EUR/g)].map((m) => [m[1], m[2], m[3]]);
      expect(reported).to.deep.equal([['1', keys[0], '1.00'], ['2', keys[1], '2.00'], ['3', keys[2], '3.00']]);
      expect((await cluster.balanceOf('BankA', 'alice')).balanceMinor).to.equal(9_400n);
      expect((await cluster.balanceOf('BankB', 'bob')).balanceMinor).to.equal(5_600n);
      expect(await debitsOf(cluster, 'BankA', 'alice')).to.have.members([100n, 200n, 300n]);
      await expectTotalsUnchanged();
      const after = await client.queueList();
      expect(after.map((e) => e.state)).to.deep.equal(['committed', 'committed', 'committed']);
    });

    it('finishes queued and in-flight payments after the client is killed (SIGKILL), none doubled', async () => {
      await cluster.stopGateway();
      const keys: string[] = [];
      for (const amount of ['4.00', '5.00', '6.00']) keys.push(await client.queueTransfer('BankB', 'bob', amount));
      await cluster.startGateway();

      // Killed after the gateway applied #4 but before the client recorded the answer (the test
      // delay holds the answer far longer than the wait for the bank): the answer is lost with the process.
      const first = await client.killWhen(/sending #4 /, { PAYMENTS_CLIENT_TEST_OUTBOX_DELAY_MS: '600000' },
        () => eventually(async () => (await cluster.balanceOf('BankB', 'bob')).balanceMinor === 6_000n, 20_000, '#4 applied at BankB'));
      expect(first).to.not.match(/#4 .* committed/);
      let listed = await client.queueList();
      expect(listed.find((e) => e.idempotencyKey === keys[0])).to.include({ state: 'pending', sent: true, inDoubt: true, cancellable: false });
      // The in-doubt entry can never be cancelled; the gateway already applied it.
      const cancel = await client.run(['queue', 'cancel', '4']);
      expect(cancel.code).to.equal(1);
      expect(cancel.stderr).to.match(/OUTBOX_NOT_CANCELLABLE/);

      // The restarted client resolves #4 with GetTransfer, then is killed right as it sends #5.
      const second = await client.killWhen(/sending #5 /);
      expect(second).to.match(/asking the gateway about #4/);
      expect(second).to.match(/#4 .* committed: 4\.00 EUR/);
      await expectTotalsUnchanged();

      // A third run finishes everything: #5 (in flight or not when killed) once, #6 once.
      const third = await client.run(['queue', 'run', '--until-empty', '--timeout-ms', '30000']);
      expect(third.code, third.stdout + third.stderr).to.equal(0);
      expect(third.stdout).to.match(/#6 .* committed: 6\.00 EUR/);
      listed = await client.queueList();
      expect(listed.filter((e) => keys.includes(e.idempotencyKey)).map((e) => e.state)).to.deep.equal(['committed', 'committed', 'committed']);
      expect(await debitsOf(cluster, 'BankA', 'alice')).to.have.members([100n, 200n, 300n, 400n, 500n, 600n]);
      expect((await cluster.balanceOf('BankA', 'alice')).balanceMinor).to.equal(10_000n - 2_100n);
      expect((await cluster.balanceOf('BankB', 'bob')).balanceMinor).to.equal(5_000n + 2_100n);
      await expectTotalsUnchanged();
      const held = (await cluster.totals()).heldMinor;
      expect(held).to.equal(0n);
    });

    it('reports refusals at once and records them, without queueing', async () => {
      const broke = await client.run(['transfer', 'BankB', 'bob', '1000.00']);
      expect(broke.code).to.equal(1);
      expect(broke.stderr).to.match(/\(INSUFFICIENT_FUNDS\)/);
      const unknown = await client.run(['transfer', 'BankB', 'nobody', '1.00']);
      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.match(/\(ACCOUNT_NOT_FOUND\)/);
      const listed = await client.queueList();
      expect(listed.slice(-2).map((e) => [e.state, e.failure.reason])).to.deep.equal([['failed', 'INSUFFICIENT_FUNDS'], ['failed', 'ACCOUNT_NOT_FOUND']]);
      expect(listed.filter((e) => e.state === 'pending')).to.have.length(0);
      await expectTotalsUnchanged();
    });
  });

  describe('session expired while queued', () => {
    let cluster: Cluster;
    let client: ClientRunner;

    before(async () => {
      // Long enough that the payment is surely queued before the session expires on a slow machine.
      cluster = await Cluster.create({ banks: ['BankA', 'BankB'], gateway: { tokenTtlSeconds: SESSION_TTL_SECONDS } });
      await cluster.addUser('BankA', 'alice', 'EUR', '100.00');
      await cluster.addUser('BankB', 'bob', 'EUR', '50.00');
      await cluster.startAll();
      client = new ClientRunner(cluster);
    });

    after(async () => {
      await cluster?.close();
    });

    it('holds the payment until login, then sends it once with the same key', async () => {
      const total = (await cluster.totals()).balanceMinor;
      const loggedIn = await client.login('BankA', 'alice', ['--json']);
      const expiresAtMs = Date.parse(JSON.parse(loggedIn.stdout).expireTime as string);
      await cluster.stopGateway();
      const key = await client.queueTransfer('BankB', 'bob', '7.00');
      // The session expires while the payment waits in the queue (the client judges by the expiry
      // it stored at login, the same instant as the token's exp).
      await eventually(async () => Date.now() > expiresAtMs, 2 * SESSION_TTL_SECONDS * 1000, 'the session expiring');
      await cluster.startGateway();

      const run = await client.run(['queue', 'run', '--until-empty', '--timeout-ms', '10000']);
      expect(run.code, run.stdout + run.stderr).to.equal(3);
      expect(run.stdout).to.match(/1 payments need a login as BankA\/alice/);
      const [entry] = await client.queueList();
      expect(entry).to.include({ idempotencyKey: key, state: 'needs_login' });
      expect((await cluster.balanceOf('BankB', 'bob')).balanceMinor).to.equal(5_000n);

      const login = await client.login('BankA', 'alice');
      expect(login.stdout).to.match(new RegExp(`#1 \\(key ${key}\\) committed: 7\\.00 EUR`));
      expect(login.stdout).to.match(/offline queue: every payment was sent/);
      expect((await cluster.balanceOf('BankB', 'bob')).balanceMinor).to.equal(5_700n);
      const { metadata } = await cluster.login('BankA', 'alice');
      const t = await cluster.gatewayClient().getTransfer({ idempotencyKey: key }, { metadata });
      expect(t.transfer?.amountMinor).to.equal(700n);
      // Sent once: a later run has nothing to do, and the money moved once.
      const again = await client.run(['queue', 'run', '--until-empty']);
      expect(again.code, again.stdout).to.equal(0);
      expect(await debitsOf(cluster, 'BankA', 'alice')).to.deep.equal([700n]);
      expect((await cluster.totals()).balanceMinor).to.equal(total);
    });
  });
});

import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { ClientError, Status, type Metadata } from 'nice-grpc';
import { FAILPOINTS_ENV } from '../../src/failpoints/index.js';
import { Decision } from '../../src/gen/coordinator/v1/coordinator.js';
import { TransferStatus } from '../../src/gen/payments/v1/gateway.js';
import { reasonOf } from '../../src/grpc/errors.js';
import { bearer, Cluster, eventually } from '../helpers/cluster.js';
import { expectFailure } from '../helpers/expect-failure.js';
import { nodeLog } from '../helpers/logs.js';
import { balances, leftovers } from '../helpers/outcomes.js';
import { PostgresServer } from '../helpers/postgres.js';

// Several gateway processes over one real PostgreSQL (config gateway.store = postgres), two real
// banks: one truth whichever instance is asked, and a killed or paused instance's transfers are
// finished by another, its stale writes refused.

/** Lease of the test's instances: short, so that takeovers happen within the test's patience. */
const LEASE_MS = 2000;
/** A takeover must have finished the victim's transfers within the lease plus this (a failure bound). */
const TAKEOVER_SLACK_MS = 15_000;
const START_BALANCE_MINOR = 100_000n;

describe('several gateways over PostgreSQL', function () {
  let pg: PostgresServer;
  let cluster: Cluster;
  let alice: { metadata: Metadata; token: string };

  before(async () => {
    pg = await PostgresServer.start();
    cluster = await Cluster.create({
      banks: ['BankA', 'BankB'],
      gatewayInstances: ['g1', 'g2'],
      postgres: { host: '127.0.0.1', port: pg.port, database: 'payments', user: 'payments' },
      // A login back-off far longer than the test, so that a throttled account stays throttled.
      gateway: { leaseMs: LEASE_MS, leaseRenewIntervalMs: 500, takeoverIntervalMs: 250, prepareTimeoutMs: 60_000, loginBackoffBaseMs: 600_000 },
      bank: { inDoubtQueryAfterMs: 500 },
    });
    await cluster.reservePorts();
    await cluster.addUser('BankA', 'alice', 'EUR', '1000.00');
    await cluster.addUser('BankB', 'bob', 'EUR', '1000.00');
    await cluster.addUser('BankA', 'carol', 'EUR', '0.00'); // logins only: the sum of balances stays alice's and bob's
    await cluster.startBank('BankA');
    await cluster.startBank('BankB');
    await cluster.startGatewayInstance('g1');
    await cluster.startGatewayInstance('g2');
  });
  after(async () => {
    await cluster?.close();
    await pg?.stop();
  });

  const login = async (id: string) => {
    const res = await cluster.instanceClient(id).login({ bank: 'BankA', username: 'alice', password: cluster.passwordOf('BankA', 'alice') });
    return { metadata: bearer(res.accessToken), token: res.accessToken };
  };
  const pay = (id: string, key: string, amountMinor: bigint, metadata: Metadata) =>
    cluster.instanceClient(id).createTransfer({ idempotencyKey: key, toBank: 'BankB', toUsername: 'bob', amountMinor, currency: 'EUR' }, { metadata });
  const settled = async () => {
    await eventually(async (note) => {
      const left = await leftovers(cluster);
      note(left.join(', '));
      return left.length === 0;
    }, LEASE_MS + TAKEOVER_SLACK_MS, 'every transfer finished everywhere');
    const b = await balances(cluster);
    expect(b.balanceMinor, 'sum of balances').to.equal(2n * START_BALANCE_MINOR);
    expect(b.heldMinor).to.equal(0n);
    return b;
  };

  it('one truth at every instance: tokens, replays, GetTransfer and logouts', async () => {
    alice = await login('g1');
    // A token issued by g1 works at g2 (g1 published its verify key in the database).
    const atG2 = await cluster.instanceClient('g2').getBalance({}, { metadata: alice.metadata });
    expect(atG2.account?.username).to.equal('alice');
    const key = randomUUID();
    const first = await pay('g1', key, 1250n, alice.metadata);
    expect(first.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    const replay = await pay('g2', key, 1250n, alice.metadata);
    expect(replay.transfer?.transactionId).to.equal(first.transfer?.transactionId);
    const got = await cluster.instanceClient('g2').getTransfer({ idempotencyKey: key }, { metadata: alice.metadata });
    expect(got.transfer?.transactionId).to.equal(first.transfer?.transactionId);
    // The same key with other parameters is refused at the other instance too.
    const reused = await pay('g2', key, 999n, alice.metadata).catch((e: unknown) => e);
    expect(reasonOf(reused)).to.equal('IDEMPOTENCY_KEY_REUSED');

    const other = await login('g2');
    await cluster.instanceClient('g1').logout({}, { metadata: other.metadata });
    // Refused at g2 too, within its revocation re-read interval.
    await eventually(async () => {
      const err = await cluster.instanceClient('g2').getBalance({}, { metadata: other.metadata }).then(() => undefined, (e: unknown) => e);
      return reasonOf(err) === 'TOKEN_REVOKED';
    }, 5000, 'the logout at g1 to be refused at g2');
    const b = await settled();
    expect(b.byUser.get('bob@BankB')).to.equal(START_BALANCE_MINOR + 1250n);
  });

  it('counts failed logins at every instance: guesses spread over them are throttled as at one', async () => {
    const attempt = (id: string, password: string) => cluster.instanceClient(id).login({ bank: 'BankA', username: 'carol', password });
    // Five wrong passwords, alternating: no instance alone has seen its limit (five) of them.
    for (let i = 0; i < 5; i++) await expectFailure(attempt(i % 2 === 0 ? 'g1' : 'g2', 'wrong'), Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
    // Together they have: even the right password is refused at both, with the time to wait.
    for (const id of ['g1', 'g2']) {
      const refused = await expectFailure(attempt(id, cluster.passwordOf('BankA', 'carol')), Status.RESOURCE_EXHAUSTED, 'LOGIN_THROTTLED');
      expect(refused.details).to.match(/this account/);
    }
  });

  it('20 concurrent duplicates spread over both instances start exactly one transfer', async () => {
    const before = await balances(cluster);
    const key = randomUUID();
    const answers = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => pay(i % 2 ? 'g2' : 'g1', key, 700n, alice.metadata)));
    const ids = new Set<string>();
    for (const a of answers) {
      if (a.status === 'fulfilled') ids.add(a.value.transfer!.transactionId);
      else expect(reasonOf(a.reason), String(a.reason)).to.equal('TRANSFER_IN_PROGRESS');
    }
    expect(ids.size).to.equal(1);
    const b = await settled();
    expect(b.byUser.get('bob@BankB')).to.equal(before.byUser.get('bob@BankB')! + 700n);
  });

  // Every gateway failpoint but the SQLite one; undecided transfers are presumed aborted by the taker.
  const KILL_POINTS = {
    'gateway.after_begin_persisted': 'aborted',
    'gateway.after_prepare_sent': 'aborted',
    'gateway.after_vote_received': 'aborted',
    'gateway.after_decision_persisted': 'committed',
    'gateway.between_commits': 'committed',
    'gateway.after_last_ack': 'committed',
  } as const;
  for (const [point, expected] of Object.entries(KILL_POINTS)) {
    it(`g1 killed at ${point}: g2 takes its transfer over and finishes it`, async () => {
      const before = await balances(cluster);
      await cluster.stopGatewayInstance('g1');
      const armed = await cluster.startGatewayInstance('g1', { [FAILPOINTS_ENV]: point });
      const key = randomUUID();
      const answer = pay('g1', key, 300n, alice.metadata).then(
        (res) => (res.transfer?.status === TransferStatus.TRANSFER_STATUS_COMMITTED ? 'committed' : `status ${res.transfer?.status}`),
        (e: unknown) => e,
      );
      expect(await armed.exited).to.equal('SIGKILL');
      // COMMITTED leaves with the Commits once the decision is durable (replyAckWaitMs 0): a kill
      // after that point may come after the answer. Before it, the caller can only see the crash.
      const answered = await answer;
      if (expected === 'committed' && point !== 'gateway.after_decision_persisted' && answered === 'committed') {
        console.log(`      (${point}: COMMITTED reached the client before the kill)`);
      } else {
        expect(answered).to.be.instanceOf(ClientError);
      }
      // The client retries at the survivor with the same key: the outcome the takeover decided.
      let outcome: string | undefined;
      await eventually(async (note) => {
        try {
          const res = await pay('g2', key, 300n, alice.metadata);
          outcome = res.transfer?.status === TransferStatus.TRANSFER_STATUS_COMMITTED ? 'committed' : `status ${res.transfer?.status}`;
        } catch (err) {
          note(`${reasonOf(err)}`);
          if (reasonOf(err) === 'TRANSACTION_ABORTED' || reasonOf(err) === 'PREPARE_TIMEOUT') outcome = 'aborted';
        }
        return outcome !== undefined;
      }, LEASE_MS + TAKEOVER_SLACK_MS, `g2 to answer for g1's transfer (${point})`);
      expect(outcome).to.equal(expected);
      const b = await settled();
      const moved = expected === 'committed' ? 300n : 0n;
      expect(b.byUser.get('bob@BankB')).to.equal(before.byUser.get('bob@BankB')! + moved);
      expect(nodeLog(cluster, 'gateway-g2').some((l) => l.message === 'took over transfers whose owner stopped renewing its lease')).to.equal(true);
      await cluster.startGatewayInstance('g1');
    });
  }

  it('a bank in doubt asks another instance: GetDecision at g2 answers for g1\'s transfer from the shared log', async () => {
    await cluster.stopGatewayInstance('g1');
    const armed = await cluster.startGatewayInstance('g1', { [FAILPOINTS_ENV]: 'gateway.after_vote_received' });
    const key = randomUUID();
    const answer = pay('g1', key, 400n, alice.metadata).then(() => 'answered', (e: unknown) => e);
    expect(await armed.exited).to.equal('SIGKILL');
    expect(await answer).to.be.instanceOf(ClientError);
    const txId = await pg.psql(`SELECT tx_id FROM transfers WHERE idempotency_key = '${key}'`);
    expect(txId).to.match(/^[0-9a-f-]{36}$/);
    // BankB's question, at the instance that never saw the transfer: pending while g1's lease runs,
    // then the takeover's presumed abort (past prepare deadline plus lease, never left pending).
    const asBankB = cluster.instanceCoordinator('g2', 'BankB');
    let decision: Decision | undefined;
    await eventually(async (note) => {
      decision = (await asBankB.getDecision({ transactionId: txId })).decision;
      note(Decision[decision]);
      return decision !== Decision.DECISION_PENDING;
    }, LEASE_MS + TAKEOVER_SLACK_MS, 'g2 to decide g1\'s transfer');
    expect(decision).to.equal(Decision.DECISION_ABORT);
    await settled();
    await cluster.startGatewayInstance('g1');
  });

  it('a paused owner (SIGSTOP past its lease) is fenced: its late writes change nothing', async () => {
    const before = await balances(cluster);
    // BankB answers nothing: g1's prepare to it hangs (its deadline is a minute away).
    await cluster.stopBank('BankB');
    const accepted: net.Socket[] = [];
    const hanging = net.createServer((socket) => {
      socket.on('error', () => undefined);
      accepted.push(socket);
    });
    await new Promise<void>((resolve) => hanging.listen(cluster.config.banks.BankB.port, '127.0.0.1', resolve));
    const key = randomUUID();
    // (Its answer is not awaited: the client's deadline ends it long before g1 wakes up.)
    void pay('g1', key, 400n, alice.metadata).catch(() => undefined);
    const g1 = cluster.instances.get('g1')!;
    try {
      // The begin is durable and the debit held at BankA: g1 is waiting for BankB's vote.
      await eventually(async () => (await cluster.balanceOf('BankA', 'alice')).availableMinor < (await cluster.balanceOf('BankA', 'alice')).balanceMinor,
        20_000, 'BankA to hold the debit');
      g1.child.kill('SIGSTOP');
      // g2 takes the transfer over (presumed abort) and releases BankA's hold; BankB comes back.
      await eventually(async () => {
        const a = await cluster.balanceOf('BankA', 'alice');
        return a.availableMinor === a.balanceMinor;
      }, LEASE_MS + TAKEOVER_SLACK_MS, 'g2 to abort the paused owner\'s transfer at BankA');
      // g1's connection to the silent port breaks when it wakes: its prepare fails, it decides.
      for (const s of accepted) s.destroy();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
      await cluster.startBank('BankB');
    } finally {
      g1.child.kill('SIGCONT');
    }
    // g1 wakes up; whatever it writes next for that transfer is refused.
    await eventually(async () => nodeLog(cluster, 'gateway-g1').some((l) => l.message === 'transfer taken over by another gateway; this one stops driving it'),
      30_000, 'g1 to be fenced when it writes');
    const err = await pay('g1', key, 400n, alice.metadata).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(ClientError);
    expect((err as ClientError).code).to.equal(Status.FAILED_PRECONDITION);
    const b = await settled();
    expect(b.byUser.get('bob@BankB')).to.equal(before.byUser.get('bob@BankB'));
  });
});

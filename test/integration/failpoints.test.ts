import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import type { Metadata } from 'nice-grpc';
import { EntryDirection } from '../../src/gen/bank/v1/bank.js';
import { FAILPOINTS_ENV } from '../../src/failpoints/index.js';
import { Cluster, eventually } from '../helpers/cluster.js';
import {
  balances,
  bankOf,
  gatewayOf,
  historyFor,
  leftovers,
  resolveOutcome,
  unfinishedAtGateway,
  untilCrash,
} from '../helpers/outcomes.js';
import { gatewayLog } from '../helpers/logs.js';
import { runBin, type NodeProcess } from '../helpers/processes.js';

// Crash at every step where a crash matters (src/failpoints), restart the node, and check the
// final state: the transfer is fully applied or not at all, no hold or in-doubt leg is left, the
// client's retry with the same key gets the true outcome, and the sum of all balances is unchanged.

type Node = 'gateway' | 'BankA' | 'BankB';

interface Scenario {
  node: Node;
  point: string;
  /** 'rich': alice pays bob 12.34 (commits); 'poor': erin pays bob more than she has (aborts). */
  payer: 'rich' | 'poor';
  /** 'committed' or the abort reason. */
  expected: string;
}

const SCENARIOS: Scenario[] = [
  // Before the decision the transfer is aborted (presumed abort at restart): nothing moves.
  { node: 'gateway', point: 'gateway.after_begin_persisted', payer: 'rich', expected: 'TRANSACTION_ABORTED' },
  // The prepares are queued beside the begin record (a gateway with a log of its own): a crash
  // there leaves no record and sends nothing, so the retry is the transfer's first run.
  { node: 'gateway', point: 'gateway.after_prepare_sent.debit', payer: 'rich', expected: 'committed' },
  { node: 'gateway', point: 'gateway.after_prepare_sent.credit', payer: 'rich', expected: 'committed' },
  { node: 'gateway', point: 'gateway.after_vote_received.debit', payer: 'rich', expected: 'TRANSACTION_ABORTED' },
  { node: 'gateway', point: 'gateway.after_vote_received.credit', payer: 'rich', expected: 'TRANSACTION_ABORTED' },
  // After the decision it is final: a commit completes after the restart, an abort stays an abort.
  { node: 'gateway', point: 'gateway.after_decision_persisted', payer: 'rich', expected: 'committed' },
  { node: 'gateway', point: 'gateway.after_decision_persisted', payer: 'poor', expected: 'INSUFFICIENT_FUNDS' },
  { node: 'gateway', point: 'gateway.between_commits', payer: 'rich', expected: 'committed' },
  { node: 'gateway', point: 'gateway.after_last_ack', payer: 'rich', expected: 'committed' },
  { node: 'gateway', point: 'gateway.after_last_ack', payer: 'poor', expected: 'INSUFFICIENT_FUNDS' },
  // A bank that dies after its hold is durable gives no vote: the gateway aborts and releases it.
  { node: 'BankA', point: 'bank.after_prepare_persisted.debit', payer: 'rich', expected: 'BANK_UNAVAILABLE' },
  { node: 'BankB', point: 'bank.after_prepare_persisted.credit', payer: 'rich', expected: 'BANK_UNAVAILABLE' },
  // A bank that dies after applying its commit (or abort) gets it again after the restart: a repeat.
  { node: 'BankA', point: 'bank.after_commit_applied', payer: 'rich', expected: 'committed' },
  { node: 'BankB', point: 'bank.after_commit_applied', payer: 'rich', expected: 'committed' },
  { node: 'BankB', point: 'bank.after_abort_applied', payer: 'poor', expected: 'INSUFFICIENT_FUNDS' },
];

describe('failpoints: crash at every step, restart, nothing lost or doubled', function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let startTotal: bigint;
  const sessions: Record<string, Metadata> = {};

  before(async () => {
    cluster = await Cluster.create({
      banks: ['BankA', 'BankB'],
      // Deadlines far above what a busy CI machine needs: a slow fsync must not turn an expected
      // outcome into a timeout. The retry intervals stay short so that recovery is quick.
      gateway: { prepareTimeoutMs: 15_000, replyAckWaitMs: 500, commitRetryIntervalMs: 50, commitRetryMaxIntervalMs: 300, phase2CallTimeoutMs: 5000 },
      bank: { inDoubtQueryAfterMs: 2000, inDoubtCheckIntervalMs: 250, inDoubtRetryMaxIntervalMs: 1000 },
    });
    await cluster.addUser('BankA', 'alice', 'EUR', '1000.00');
    await cluster.addUser('BankA', 'erin', 'EUR', '1.00');
    await cluster.addUser('BankB', 'bob', 'EUR', '1000.00');
    await cluster.reservePorts();
    await cluster.startAll();
    startTotal = (await balances(cluster)).balanceMinor;
    sessions.alice = (await cluster.login('BankA', 'alice')).metadata;
    sessions.erin = (await cluster.login('BankA', 'erin')).metadata;
    sessions.bob = (await cluster.login('BankB', 'bob')).metadata;
  });

  after(async () => {
    await cluster?.close();
  });

  /** The node started with a failpoint in the running scenario, if it may still be alive. */
  let armedNode: { node: Node; process: NodeProcess } | undefined;

  afterEach(async () => {
    // A failed scenario must not leave an armed node behind for the next one (it would crash there).
    const left = armedNode;
    armedNode = undefined;
    if (!left || left.process.child.exitCode !== null || left.process.child.signalCode !== null) return;
    if ((left.node === 'gateway' ? cluster.gateway : cluster.banks.get(left.node)) !== left.process) return;
    await restart(left.node);
  });

  async function restart(node: Node, env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
    if (node === 'gateway') {
      await cluster.stopGateway();
      return cluster.startGateway(env);
    }
    await cluster.stopBank(node);
    return cluster.startBank(node, env);
  }

  /** Until the gateway's channel to `bank` is up again (a read through the gateway succeeds). */
  async function gatewayReaches(bank: string): Promise<void> {
    const session = bank === 'BankA' ? sessions.alice! : sessions.bob!;
    await eventually(async () => {
      try {
        await gatewayOf(cluster).getBalance({}, { metadata: session });
        return true;
      } catch {
        return false;
      }
    });
  }

  /** Until nothing is held, in doubt or unfinished anywhere; a timeout names what was left. */
  async function settled(): Promise<void> {
    await eventually(async (note) => {
      const left = await leftovers(cluster);
      note(left.join('; '));
      return left.length === 0;
    }, 30_000, 'the system settling');
  }

  for (const s of SCENARIOS) {
    it(`${s.node} crashes at ${s.point} (${s.payer === 'rich' ? 'a transfer that commits' : 'a refused transfer'}): ${s.expected}`, async () => {
      const payer = s.payer === 'rich' ? { name: 'alice', metadata: sessions.alice! } : { name: 'erin', metadata: sessions.erin! };
      const amountMinor = s.payer === 'rich' ? 1234n : 50_000n;
      const before = await balances(cluster);
      const key = randomUUID();
      const args = { metadata: payer.metadata, toBank: 'BankB', toUsername: 'bob', amountMinor, key };

      const armed = await restart(s.node, { [FAILPOINTS_ENV]: s.point });
      armedNode = { node: s.node, process: armed };
      if (s.node !== 'gateway') await gatewayReaches(s.node);

      // The first attempt: its answer (if any) must agree with the final outcome.
      const first = await untilCrash(armed, () => gatewayOf(cluster).createTransfer(
        { idempotencyKey: key, toBank: 'BankB', toUsername: 'bob', amountMinor, currency: 'EUR' },
        { metadata: payer.metadata },
      ));
      expect(first.exit, first.story).to.equal('SIGKILL');
      expect(armed.output()).to.contain(`"event":"failpoint","name":"${s.point}"`);

      // Restart without the failpoint; the retry with the same key gets the true outcome.
      if (s.node === 'gateway') await cluster.startGateway();
      else await cluster.startBank(s.node);
      const final = await resolveOutcome(cluster, args);
      if (s.expected === 'committed') expect(final.kind, JSON.stringify(final)).to.equal('committed');
      else expect(final).to.deep.equal({ kind: 'aborted', reason: s.expected });
      if (first.outcome) expect(first.outcome).to.deep.equal(final);
      // Asking again changes nothing.
      expect(await resolveOutcome(cluster, args)).to.deep.equal(final);

      await settled();
      const after = await balances(cluster);
      expect(after.balanceMinor).to.equal(startTotal);
      const moved = final.kind === 'committed' ? amountMinor : 0n;
      expect(after.byUser.get(`${payer.name}@BankA`)).to.equal(before.byUser.get(`${payer.name}@BankA`)! - moved);
      expect(after.byUser.get('bob@BankB')).to.equal(before.byUser.get('bob@BankB')! + moved);

      // Applied exactly once (or not at all) at both banks.
      const txId = (await gatewayOf(cluster).getTransfer({ idempotencyKey: key }, { metadata: payer.metadata })).transfer!.transactionId;
      if (final.kind === 'committed') expect(txId).to.equal(final.txId);
      const debits = (await historyFor(cluster, 'BankA', payer.name)).filter((e) => e.txId === txId);
      const credits = (await historyFor(cluster, 'BankB', 'bob')).filter((e) => e.txId === txId);
      const n = final.kind === 'committed' ? 1 : 0;
      expect(debits.map((e) => [e.direction, e.amountMinor])).to.deep.equal(Array(n).fill([EntryDirection.ENTRY_DIRECTION_DEBIT, amountMinor]));
      expect(credits.map((e) => [e.direction, e.amountMinor])).to.deep.equal(Array(n).fill([EntryDirection.ENTRY_DIRECTION_CREDIT, amountMinor]));
    });
  }

  it('phase 2 never gives up: a decided commit waits for a dead bank across gateway restarts', async () => {
    const before = await balances(cluster);
    const key = randomUUID();
    const args = { metadata: sessions.alice!, toBank: 'BankB', toUsername: 'bob', amountMinor: 777n, key };
    const armed = await restart('gateway', { [FAILPOINTS_ENV]: 'gateway.after_decision_persisted' });
    armedNode = { node: 'gateway', process: armed };
    const crashed = await untilCrash(armed, () => gatewayOf(cluster).createTransfer(
      { idempotencyKey: key, toBank: 'BankB', toUsername: 'bob', amountMinor: 777n, currency: 'EUR' },
      { metadata: sessions.alice! },
    ));
    expect(crashed.exit, crashed.story).to.equal('SIGKILL');
    // BankB dies too; the gateway comes back, commits at BankA, and keeps trying BankB.
    await cluster.stopBank('BankB', 'SIGKILL');
    await cluster.startGateway();
    expect(await resolveOutcome(cluster, args)).to.include({ kind: 'committed' });
    await eventually(async () => (await bankOf(cluster, 'BankA').getBalance({ username: 'alice' })).balanceMinor
      === before.byUser.get('alice@BankA')! - 777n, 10_000);
    await eventually(async () => (await unfinishedAtGateway(cluster)).every((u) => u.endsWith(':committing:BankB')));
    // Another gateway crash while BankB is still down: the commit stays pending, visible to operators.
    await cluster.stopGateway('SIGKILL');
    const listed = await runBin('gateway', ['unfinished', '--config', cluster.configPath, '--json']);
    expect(listed.code, listed.stderr).to.equal(0);
    const rows = JSON.parse(listed.stdout).transfers as { transactionId: string; state: string; awaiting: string[]; idempotencyKey: string }[];
    expect(rows.map((r) => [r.idempotencyKey, r.state, r.awaiting])).to.deep.equal([[key, 'committing', ['BankB']]]);
    const text = await runBin('gateway', ['unfinished', '--config', cluster.configPath]);
    expect(text.stdout).to.match(/1 unfinished transfer:[\s\S]*committing[\s\S]*waiting for BankB/);
    const logBefore = gatewayLog(cluster).length;
    await cluster.startGateway();
    // The restarted gateway resumed phase 2 and was refused by the dead bank: still unfinished.
    const [row] = rows;
    await eventually(async () => gatewayLog(cluster).slice(logBefore).some((l) => l.transactionId === row!.transactionId
      && l.bank === 'BankB' && (l.message === 'phase 2 call failed, will retry' || l.message === 'phase 2: bank not available, will retry')),
    30_000, 'the restarted gateway retrying the commit at BankB');
    expect(await unfinishedAtGateway(cluster)).to.have.length(1);
    const inDoubt = await runBin('bank', ['in-doubt', '--config', cluster.configPath, '--name', 'BankB', '--json']);
    expect(JSON.parse(inDoubt.stdout).transactions).to.have.length(1);
    // BankB is back: the commit finally lands, once.
    await cluster.startBank('BankB');
    await settled();
    const after = await balances(cluster);
    expect(after.balanceMinor).to.equal(startTotal);
    expect(after.byUser.get('bob@BankB')).to.equal(before.byUser.get('bob@BankB')! + 777n);
    expect((await runBin('gateway', ['unfinished', '--config', cluster.configPath])).stdout).to.contain('no unfinished transfers');
  });
});

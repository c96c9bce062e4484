import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Status, type Metadata } from 'nice-grpc';
import { FAILPOINTS_ENV } from '../../src/failpoints/index.js';
import { CoordinatorServiceDefinition, Decision } from '../../src/gen/coordinator/v1/coordinator.js';
import { createNodeClient } from '../../src/grpc/client.js';
import { reasonOf } from '../../src/grpc/errors.js';
import { silentLogger } from '../../src/logging/logger.js';
import { loadTls } from '../../src/tls/credentials.js';
import { Cluster, eventually } from '../helpers/cluster.js';
import { nodeLog } from '../helpers/logs.js';
import { balances, bankOf, gatewayOf, historyFor, inDoubtAt, leftovers, resolveOutcome, unfinishedAtGateway, untilCrash } from '../helpers/outcomes.js';
import { DEFAULT_CONFIG } from '../helpers/clock.js';

// The participant's termination protocol: a bank holding a prepared leg longer than
// bank.inDoubtQueryAfterMs asks the gateway (coordinator.v1.CoordinatorService/GetDecision, only
// bank certificates admitted) and applies the answer; it never releases a yes-voted hold without it.

const QUERY_AFTER_MS = 1000;

describe('termination: banks ask the coordinator about in-doubt legs', function () {
  this.timeout(90_000);
  let cluster: Cluster;
  let startTotal: bigint;
  let alice: Metadata;

  before(async () => {
    cluster = await Cluster.create({
      banks: ['BankA', 'BankB'],
      gateway: { prepareTimeoutMs: 3000, replyAckWaitMs: 300, commitRetryIntervalMs: 50, commitRetryMaxIntervalMs: 300, phase2CallTimeoutMs: 500 },
      bank: { inDoubtQueryAfterMs: QUERY_AFTER_MS, inDoubtCheckIntervalMs: 200, inDoubtRetryMaxIntervalMs: 800, inDoubtQueryTimeoutMs: 1000 },
    });
    await cluster.addUser('BankA', 'alice', 'EUR', '100.00');
    await cluster.addUser('BankB', 'bob', 'EUR', '100.00');
    await cluster.reservePorts();
    await cluster.startAll();
    startTotal = (await balances(cluster)).balanceMinor;
    alice = (await cluster.login('BankA', 'alice')).metadata;
  });

  afterEach(async () => {
    await eventually(async () => (await leftovers(cluster)).length === 0);
    expect((await balances(cluster)).balanceMinor).to.equal(startTotal);
  });

  after(async () => cluster?.close());

  function coordinatorClient(identity: string) {
    const c = createNodeClient(CoordinatorServiceDefinition, `localhost:${cluster.config.gateway.port}`,
      loadTls(cluster.certsDir, identity), silentLogger(), { callTimeoutMs: 5000, retryMaxAttempts: 1, retryBaseDelayMs: 50, retryMaxDelayMs: 50, ...DEFAULT_CONFIG.grpc });
    return c;
  }

  const prepareAtA = (txId: string) => bankOf(cluster, 'BankA').prepareDebit({
    transactionId: txId, username: 'alice', amountMinor: 500n, currency: 'EUR', counterpartyBank: 'BankB', counterpartyUsername: 'bob',
  });
  const heldAtA = async () => {
    const b = await bankOf(cluster, 'BankA').getBalance({ username: 'alice' });
    return b.balanceMinor - b.availableMinor;
  };

  it('answers banks only: commit, abort, presumed abort; refuses other certificates', async () => {
    const bank = coordinatorClient('BankA');
    const client = coordinatorClient('client');
    try {
      const key = randomUUID();
      const done = await resolveOutcome(cluster, { metadata: alice, toBank: 'BankB', toUsername: 'bob', amountMinor: 1n, key });
      expect(done.kind).to.equal('committed');
      const txId = (done as { txId: string }).txId;
      expect((await bank.client.getDecision({ transactionId: txId })).decision).to.equal(Decision.DECISION_COMMIT);
      expect((await bank.client.getDecision({ transactionId: randomUUID() })).decision).to.equal(Decision.DECISION_ABORT);
      const bad = await bank.client.getDecision({ transactionId: 'nope' }).catch((e: unknown) => e);
      expect(reasonOf(bad)).to.equal('INVALID_ARGUMENT');
      const denied = await client.client.getDecision({ transactionId: txId }).catch((e: unknown) => e);
      expect((denied as { code: Status }).code).to.equal(Status.PERMISSION_DENIED);
      expect(reasonOf(denied)).to.equal('PEER_NOT_ALLOWED');
      // A certificate from the same CA whose name is no known bank is refused too.
      const intruder = coordinatorClient('intruder');
      expect(reasonOf(await intruder.client.getDecision({ transactionId: txId }).catch((e: unknown) => e))).to.equal('PEER_NOT_ALLOWED');
      intruder.close();
    } finally {
      bank.close();
      client.close();
    }
  });

  it('a leg the gateway never heard of is released by presumed abort', async () => {
    const txId = randomUUID();
    expect((await prepareAtA(txId)).vote).to.equal(1);
    expect(await heldAtA()).to.equal(500n);
    expect(inDoubtAt(cluster, 'BankA')).to.deep.equal([txId]);
    await eventually(async () => (await heldAtA()) === 0n);
    expect(inDoubtAt(cluster, 'BankA')).to.deep.equal([]);
    // The tombstone refuses the prepare if it is repeated now.
    expect((await prepareAtA(txId)).reason).to.equal('TRANSACTION_ABORTED');
  });

  it('never releases a yes-voted hold while the gateway is unreachable; resolves once it is back', async () => {
    await cluster.stopGateway('SIGKILL');
    try {
      const txId = randomUUID();
      const logBefore = nodeLog(cluster, 'BankA').length;
      await prepareAtA(txId);
      // A query round about this leg went unanswered (the bank logs it): the hold stays.
      await eventually(async () => nodeLog(cluster, 'BankA').slice(logBefore).some((l) => l.transactionId === txId
        && l.message === 'in-doubt: the coordinator gave no answer; the legs stay prepared, will ask again'),
      30_000, 'an unanswered decision query about the leg');
      expect(await heldAtA()).to.equal(500n);
      expect(inDoubtAt(cluster, 'BankA')).to.deep.equal([txId]);
    } finally {
      await cluster.startGateway();
    }
    await eventually(async () => (await heldAtA()) === 0n);
  });

  it('a bank the gateway cannot reach applies the commit decision it asked for', async () => {
    const before = await balances(cluster);
    const key = randomUUID();
    const args = { metadata: alice, toBank: 'BankB', toUsername: 'bob', amountMinor: 250n, key };
    // The gateway decides commit and dies before any Commit leaves.
    await cluster.stopGateway();
    const armed = await cluster.startGateway({ [FAILPOINTS_ENV]: 'gateway.after_decision_persisted' });
    const crashed = await untilCrash(armed, () => gatewayOf(cluster).createTransfer(
      { idempotencyKey: key, toBank: 'BankB', toUsername: 'bob', amountMinor: 250n, currency: 'EUR' }, { metadata: alice }));
    expect(crashed.exit, crashed.story).to.equal('SIGKILL');
    // It comes back unable to dial BankB (a wrong address): only BankB's own query can finish it there.
    const bankB = cluster.config.banks.BankB;
    bankB.address = 'localhost:1';
    cluster.writeConfig();
    try {
      await cluster.startGateway();
      expect((await resolveOutcome(cluster, args)).kind).to.equal('committed');
      await eventually(async () => inDoubtAt(cluster, 'BankB').length === 0);
      expect((await bankOf(cluster, 'BankB').getBalance({ username: 'bob' })).balanceMinor).to.equal(before.byUser.get('bob@BankB')! + 250n);
      // The gateway still waits for BankB's acknowledgement.
      expect((await unfinishedAtGateway(cluster)).some((u) => u.endsWith(':committing:BankB'))).to.equal(true);
    } finally {
      delete bankB.address;
      cluster.writeConfig();
      await cluster.stopGateway();
      await cluster.startGateway();
    }
    // Now the gateway's repeated Commit is acknowledged (a repeat: nothing applied twice).
    await eventually(async () => (await unfinishedAtGateway(cluster)).length === 0);
    const txId = (await gatewayOf(cluster).getTransfer({ idempotencyKey: key }, { metadata: alice })).transfer!.transactionId;
    expect((await historyFor(cluster, 'BankB', 'bob')).filter((e) => e.txId === txId)).to.have.length(1);
    expect((await historyFor(cluster, 'BankA', 'alice')).filter((e) => e.txId === txId)).to.have.length(1);
  });
});

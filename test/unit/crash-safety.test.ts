import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { Ledger } from '../../src/bank/ledger.js';
import { InDoubtResolver, type CoordinatorDecision, type DecisionSource } from '../../src/bank/termination.js';
import { newId } from '../../src/core/ids.js';
import { rng } from '../../src/core/random.js';
import type { LogRecord, Tx } from '../../src/coordinator/index.js';
import { armFailpoints, failpoint, failpointsArmed, FAILPOINTS_ENV, parseFailpoints } from '../../src/failpoints/index.js';
import { eventually } from '../helpers/cluster.js';
import { ROOT } from '../helpers/processes.js';
import { createCoordinatorService } from '../../src/gateway/coordinator-service.js';
import { Decision } from '../../src/gen/coordinator/v1/coordinator.js';
import { SqliteTransferLog } from '../../src/gateway/store/sqlite.js';
import { TransferEngine } from '../../src/gateway/transfer-engine.js';
import { silentLogger } from '../../src/logging/logger.js';
import { clockReading, storeOptions } from '../helpers/clock.js';

// The pieces behind crash safety, without processes: failpoint arming, the bank's in-doubt
// resolver against a real ledger, idempotency-key retention and the coordinator's decision answers.

const HOUR_MS = 3_600_000;

describe('failpoints', () => {
  afterEach(() => armFailpoints([]));

  /** Runs `failpoint(...)` in a fresh process (as a node would) and reports how it ended. */
  function reach(env: NodeJS.ProcessEnv, ...call: string[]): { status: number | null; signal: string | null; out: string } {
    const module = pathToFileURL(path.join(ROOT, 'src/failpoints/index.ts')).href;
    const script = `import { failpoint } from ${JSON.stringify(module)};\n`
      + `failpoint(${call.map((c) => JSON.stringify(c)).join(', ')});\nprocess.stdout.write('survived\\n');\n`;
    const env2 = { ...process.env, ...env };
    if (env[FAILPOINTS_ENV] === undefined) delete env2[FAILPOINTS_ENV];
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, env: env2, encoding: 'utf8' });
    return { status: r.status, signal: r.signal, out: r.stdout + r.stderr };
  }

  it('are off by default and then do nothing; an armed point kills the process at once', () => {
    expect(failpointsArmed()).to.equal(false);
    // Unset, or armed for other points: the process goes on.
    expect(reach({}, 'gateway.after_decision_persisted')).to.deep.include({ status: 0, out: 'survived\n' });
    expect(reach({ [FAILPOINTS_ENV]: 'gateway.after_last_ack,gateway.after_vote_received.credit' }, 'gateway.after_vote_received', 'debit'))
      .to.deep.include({ status: 0, out: 'survived\n' });
    // Armed: SIGKILL before the next statement, with the event line on stderr.
    const killed = reach({ [FAILPOINTS_ENV]: 'gateway.after_vote_received.debit' }, 'gateway.after_vote_received', 'debit');
    expect(killed.signal).to.equal('SIGKILL');
    expect(killed.out).to.match(/^\{"event":"failpoint","name":"gateway.after_vote_received.debit","pid":\d+\}\n$/);
  });

  it('parse a list and refuse unknown names', () => {
    expect(parseFailpoints(' gateway.after_last_ack, bank.after_prepare_persisted.debit ')).to.deep.equal([
      'gateway.after_last_ack', 'bank.after_prepare_persisted.debit',
    ]);
    expect(parseFailpoints(undefined)).to.deep.equal([]);
    expect(() => armFailpoints(['gateway.after_lunch'])).to.throw(/unknown failpoint "gateway.after_lunch"/);
    armFailpoints(['gateway.after_prepare_sent.credit']);
    expect(failpointsArmed()).to.equal(true);
    // Another point, or the same point for the other leg, does not fire.
    failpoint('gateway.after_prepare_sent', 'debit');
    failpoint('gateway.after_last_ack');
  });
});

describe('bank in-doubt resolver (termination protocol)', () => {
  let dir: string;
  let ledger: Ledger;
  let nowMs: number;
  const answers = new Map<string, CoordinatorDecision | Error>();
  const asked: string[] = [];
  const source: DecisionSource = {
    async getDecision(txId) {
      asked.push(txId);
      const a = answers.get(txId) ?? new Error('unreachable');
      if (a instanceof Error) throw a;
      return a;
    },
    close() {},
  };
  const limits = { inDoubtQueryAfterMs: 10_000, inDoubtCheckIntervalMs: 100, inDoubtQueryBatchMax: 10, inDoubtQueryTimeoutMs: 100, inDoubtRetryMaxIntervalMs: 1000 };
  const prepare = (kind: 'debit' | 'credit', username = kind === 'debit' ? 'alice' : 'bob') => {
    const txId = newId();
    const r = ledger.prepare({ txId, kind, username, amountMinor: 100n, currency: 'EUR', counterpartyBank: 'BankB', counterpartyUsername: 'x' });
    expect(r.ok).to.equal(true);
    return txId;
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-term-'));
    nowMs = 1_000_000;
    ledger = Ledger.open(dir, () => nowMs);
    ledger.createAccount({ username: 'alice', passwordHash: 'x', currency: 'EUR', balanceMinor: 1000n });
    ledger.createAccount({ username: 'bob', passwordHash: 'x', currency: 'EUR', balanceMinor: 0n });
    answers.clear();
    asked.length = 0;
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('asks only about legs prepared longer than inDoubtQueryAfterMs, and applies commit and abort', async () => {
    const toCommit = prepare('debit');
    const toAbort = prepare('debit');
    const credit = prepare('credit');
    const resolver = new InDoubtResolver(ledger, source, limits, silentLogger(), clockReading(() => nowMs), rng(1));
    expect(await resolver.round()).to.deep.include({ asked: 0, unanswered: false });
    nowMs += 10_001;
    const young = prepare('debit');
    answers.set(toCommit, 'commit').set(toAbort, 'abort').set(credit, 'commit');
    expect(await resolver.round()).to.deep.equal({ asked: 3, committed: 2, aborted: 1, pending: 0, unanswered: false });
    expect(asked).to.not.include(young);
    expect(ledger.txState(toCommit)).to.equal('committed');
    expect(ledger.txState(toAbort)).to.equal('aborted');
    expect(ledger.txState(credit)).to.equal('committed');
    expect(ledger.account('alice')).to.deep.include({ balanceMinor: 900n, heldMinor: 100n });
    expect(ledger.account('bob')).to.deep.include({ balanceMinor: 100n });
  });

  it('keeps a yes-voted hold while the answer is pending or missing', async () => {
    // Oldest first: `pending` is asked before `silent`.
    const pending = prepare('debit');
    nowMs += 1;
    const silent = prepare('debit');
    nowMs += 20_000;
    answers.set(pending, 'pending');
    const resolver = new InDoubtResolver(ledger, source, limits, silentLogger(), clockReading(() => nowMs), rng(1));
    const r = await resolver.round();
    expect(r).to.deep.include({ pending: 1, unanswered: true });
    expect(ledger.txState(pending)).to.equal('prepared');
    expect(ledger.txState(silent)).to.equal('prepared');
    expect(ledger.account('alice')).to.deep.include({ balanceMinor: 1000n, heldMinor: 200n });
    // Later the coordinator answers (presumed abort for a transaction it never recorded).
    answers.set(pending, 'abort').set(silent, 'abort');
    expect(await resolver.round()).to.deep.include({ aborted: 2, unanswered: false });
    expect(ledger.account('alice')).to.deep.include({ heldMinor: 0n });
  });

  it('a decision the ledger cannot write leaves the leg prepared; a later round applies it', async () => {
    // A ledger of its own whose database can be made to refuse writes, as a disk gone read-only.
    const db = new Database(':memory:');
    const own = Ledger.over(db, 'BankA', () => nowMs);
    try {
      own.createAccount({ username: 'alice', passwordHash: 'x', currency: 'EUR', balanceMinor: 1000n });
      const txId = newId();
      expect(own.prepare({ txId, kind: 'debit', username: 'alice', amountMinor: 100n, currency: 'EUR', counterpartyBank: 'BankB', counterpartyUsername: 'x' }).ok).to.equal(true);
      nowMs += 20_000;
      answers.set(txId, 'abort');
      const resolver = new InDoubtResolver(own, source, limits, silentLogger(), clockReading(() => nowMs), rng(1));
      db.pragma('query_only = 1');
      expect(await resolver.round()).to.deep.include({ asked: 1, aborted: 0, unanswered: true });
      expect(own.txState(txId)).to.equal('prepared');
      db.pragma('query_only = 0');
      expect(await resolver.round()).to.deep.include({ asked: 1, aborted: 1, unanswered: false });
      expect(own.account('alice')).to.deep.include({ balanceMinor: 1000n, heldMinor: 0n });
    } finally {
      own.close();
    }
  });

  it('an answer that arrives after phase 2 already resolved the leg is a harmless repeat', async () => {
    const txId = prepare('debit');
    ledger.commit(txId);
    const other = prepare('debit');
    ledger.abort(other);
    nowMs += 20_000;
    // Nothing prepared is left: nothing is asked.
    const resolver = new InDoubtResolver(ledger, source, limits, silentLogger(), clockReading(() => nowMs), rng(1));
    expect(await resolver.round()).to.deep.include({ asked: 0 });
  });

  it('runs rounds on a timer and stops cleanly', async () => {
    const txId = prepare('debit');
    nowMs += 20_000;
    answers.set(txId, 'abort');
    const resolver = new InDoubtResolver(ledger, source, { ...limits, inDoubtCheckIntervalMs: 10 }, silentLogger(), clockReading(() => nowMs), rng(1));
    resolver.start();
    await eventually(async () => ledger.txState(txId) !== 'prepared', 20_000, 'a timed round resolving the leg');
    await resolver.stop();
    expect(ledger.txState(txId)).to.equal('aborted');
  });
});

describe('gateway: decisions for banks and idempotency-key retention', () => {
  let dir: string;
  let store: SqliteTransferLog;
  let nowMs: number;
  const tx = (key = newId()): Tx => ({
    id: newId(), idempotencyKey: key, from: { bank: 'BankA', username: 'alice' }, to: { bank: 'BankB', username: 'bob' },
    amountMinor: 5n, currency: 'EUR', createdAtMs: nowMs,
  });
  const write = (records: LogRecord[], atMs: number) => { for (const r of records) store.append(r, atMs); };
  const committed = (t: Tx): LogRecord[] => [
    { type: 'begin', tx: t },
    { type: 'decision', txId: t.id, decision: 'commit', awaiting: ['BankA', 'BankB'] },
    { type: 'ack', txId: t.id, bank: 'BankA' },
    { type: 'completed', txId: t.id, outcome: { kind: 'committed' } },
  ];
  const engine = (retentionHours = 24) => new TransferEngine({
    store,
    bankClients: { get: () => undefined },
    limits: {
      prepareTimeoutMs: 1000, replyAckWaitMs: 100, phase2CallTimeoutMs: 100, commitRetryIntervalMs: 10, commitRetryMaxIntervalMs: 100,
      inFlightTransfersMax: 10, idempotencyRetentionHours: retentionHours, idempotencyPruneBatchMax: 2, idempotencyPruneBatchesPerRoundMax: 20, idempotencyPruneIntervalMs: 60_000,
      bankBatchMaxItems: 256, bankBatchWindowMs: 0,
      transferPollIntervalMs: 50, strandedRetryIntervalMs: 1000, leaseRenewIntervalMs: 1000, takeoverIntervalMs: 1000, takeoverBatchMax: 10,
    },
    logger: silentLogger(),
    clock: clockReading(() => nowMs),
    random: rng(1),
  });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-gwstore-'));
    store = new SqliteTransferLog(path.join(dir, 'gateway.sqlite'), storeOptions());
    nowMs = 100 * HOUR_MS;
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prunes final transfers older than the retention in bounded batches, never unfinished ones', async () => {
    const old = Array.from({ length: 5 }, () => tx());
    for (const t of old) write(committed(t), nowMs - 30 * HOUR_MS);
    const oldAborted = tx();
    write([{ type: 'begin', tx: oldAborted }, { type: 'decision', txId: oldAborted.id, decision: 'abort', failure: { reason: 'INSUFFICIENT_FUNDS', message: 'x' }, awaiting: ['BankB'] },
      { type: 'completed', txId: oldAborted.id, outcome: { kind: 'aborted', failure: { reason: 'INSUFFICIENT_FUNDS', message: 'x' } } }], nowMs - 25 * HOUR_MS);
    const recent = tx();
    write(committed(recent), nowMs - 23 * HOUR_MS);
    // An old transfer still in phase 2 keeps its row (and key) whatever its age.
    const stuck = tx();
    write(committed(stuck).slice(0, 2), nowMs - 40 * HOUR_MS);
    expect(store.pruneFinal(nowMs - 24 * HOUR_MS, 4)).to.equal(4);
    const e = engine();
    await e.start();
    // start() prunes the rest (2 per batch) and leaves the young and the unfinished ones.
    for (const t of [...old, oldAborted]) expect(store.findById(t.id), t.id).to.equal(undefined);
    expect(store.findById(recent.id)?.state).to.equal('committed');
    expect(store.findById(stuck.id)?.state).to.equal('committing');
    // A pruned key is free again; the coordinator presumes abort for a pruned (finished) id.
    expect(await e.get(old[0]!.from, old[0]!.idempotencyKey)).to.equal(undefined);
    nowMs += 2 * HOUR_MS;
    expect(await e.pruneExpired()).to.equal(1);
    expect(store.findById(recent.id)).to.equal(undefined);
    await e.stop(0);
  });

  it('answers a bank: commit once decided, abort for aborted and unknown, pending while undecided', async () => {
    const c = tx();
    write(committed(c).slice(0, 2), nowMs);
    const a = tx();
    write([{ type: 'begin', tx: a }, { type: 'decision', txId: a.id, decision: 'abort', failure: { reason: 'PREPARE_TIMEOUT', message: 'x' }, awaiting: ['BankA'] }], nowMs);
    const e = engine();
    const service = createCoordinatorService(e);
    const ask = async (id: string) => (await service.getDecision({ transactionId: id }, {} as never)).decision;
    await e.start();
    expect(await ask(c.id)).to.equal(Decision.DECISION_COMMIT);
    expect(await ask(a.id)).to.equal(Decision.DECISION_ABORT);
    expect(await ask(newId())).to.equal(Decision.DECISION_ABORT);
    // Undecided: only a transfer running now can be (recovery decides every older one at start).
    const p = tx();
    store.append({ type: 'begin', tx: p }, nowMs);
    expect(await ask(p.id)).to.equal(Decision.DECISION_PENDING);
    await e.stop(0);
  });
});

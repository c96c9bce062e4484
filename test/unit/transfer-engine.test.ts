import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { delay } from 'abort-controller-x';
import { expect } from 'chai';
import { Status, type Server } from 'nice-grpc';
import { ServerError, type CallContext } from 'nice-grpc-common';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { AppError } from '../../src/core/errors.js';
import { systemClock } from '../../src/core/clock.js';
import { newId } from '../../src/core/ids.js';
import { systemRandom } from '../../src/core/random.js';
import type { AccountRef } from '../../src/core/transfer.js';
import { StaticDiscovery } from '../../src/discovery/static.js';
import {
  BankServiceDefinition,
  LegKind as WireLegKind,
  TransactionState,
  Vote,
  type BankServiceImplementation,
  type PrepareDebitRequest,
} from '../../src/gen/bank/v1/bank.js';
import { BatchStreams } from '../../src/bank/batch-stream.js';
import type { BankCalls } from '../../src/bank/service.js';
import { BankClients } from '../../src/gateway/bank-clients.js';
import { openSqliteLog, type SqliteTransferLog } from '../../src/gateway/store/sqlite.js';
import { TransferEngine } from '../../src/gateway/transfer-engine.js';
import { createNodeServer, listenTls } from '../../src/grpc/server.js';
import { silentLogger } from '../../src/logging/logger.js';
import { loadTls } from '../../src/tls/credentials.js';
import { DEFAULT_CONFIG, storeOptions } from '../helpers/clock.js';
import { refuseRecords } from '../helpers/log-faults.js';
import { PRESUMED_ABORT, type Tx } from '../../src/coordinator/index.js';

// The engine against real gRPC bank servers over mutual TLS. The banks are small in-memory 2PC
// participants written here (hold / commit / abort, idempotent by transaction id, tombstones),
// with switches to vote NO, hang, fail, or be down. The gateway side is entirely real: the
// SQLite store in a temp dir, BankClients over StaticDiscovery, the driver and the engine.

const logger = silentLogger();

interface Account {
  currency: string;
  balance: bigint;
  held: bigint;
}

type LegKind = 'debit' | 'credit';
interface BankTx {
  state: 'prepared' | 'committed' | 'aborted';
  legs: Map<LegKind, { username: string; amount: bigint }>;
}

class TestBank {
  readonly accounts = new Map<string, Account>();
  readonly txs = new Map<string, BankTx>();
  readonly calls = { prepare: 0, commit: 0, abort: 0 };
  hangPrepare = false;
  /** Told of each prepare as it arrives (before it is answered). */
  onPrepare: ((txId: string) => void) | undefined;
  /** Commit calls to fail with UNAVAILABLE before one succeeds. */
  commitFailures = 0;
  server: Server | undefined;
  port = 0;

  constructor(readonly name: string) {}

  account(username: string, balance: bigint, currency = 'EUR'): this {
    this.accounts.set(username, { currency, balance, held: 0n });
    return this;
  }

  balance(username: string): { balance: bigint; held: bigint } {
    const a = this.accounts.get(username);
    if (!a) throw new Error(`no account ${username}`);
    return { balance: a.balance, held: a.held };
  }

  /** The participant's prepare, also used by tests to simulate prepares sent before a crash. */
  prepare(kind: LegKind, req: Pick<PrepareDebitRequest, 'transactionId' | 'username' | 'amountMinor' | 'currency'>): { vote: Vote; reason: string; message: string } {
    const no = (reason: string, message: string) => ({ vote: Vote.VOTE_NO, reason, message });
    const tx = this.txs.get(req.transactionId);
    if (tx?.state === 'aborted') return no('TRANSACTION_ABORTED', 'transaction was aborted');
    if (tx?.legs.has(kind)) return { vote: Vote.VOTE_YES, reason: '', message: '' };
    const account = this.accounts.get(req.username);
    if (!account) return no('ACCOUNT_NOT_FOUND', `${req.username} has no account at ${this.name}`);
    if (account.currency !== req.currency) return no('CURRENCY_MISMATCH', `account is in ${account.currency}`);
    if (kind === 'debit') {
      if (account.balance - account.held < req.amountMinor) return no('INSUFFICIENT_FUNDS', 'not enough money');
      account.held += req.amountMinor;
    }
    const entry = tx ?? { state: 'prepared' as const, legs: new Map() };
    entry.legs.set(kind, { username: req.username, amount: req.amountMinor });
    this.txs.set(req.transactionId, entry);
    return { vote: Vote.VOTE_YES, reason: '', message: '' };
  }

  private async prepareCall(kind: LegKind, req: PrepareDebitRequest, context: CallContext) {
    this.calls.prepare++;
    if (this.hangPrepare) await delay(context.signal, 60_000);
    return this.prepare(kind, req);
  }

  commit(txId: string): TransactionState {
    const tx = this.txs.get(txId);
    if (!tx || tx.state === 'aborted') throw new ServerError(Status.FAILED_PRECONDITION, `commit of ${txId} which is not prepared`);
    if (tx.state === 'committed') return TransactionState.TRANSACTION_STATE_COMMITTED;
    for (const [kind, leg] of tx.legs) {
      const account = this.accounts.get(leg.username) as Account;
      if (kind === 'debit') {
        account.held -= leg.amount;
        account.balance -= leg.amount;
      } else {
        account.balance += leg.amount;
      }
    }
    tx.state = 'committed';
    return TransactionState.TRANSACTION_STATE_COMMITTED;
  }

  abort(txId: string): TransactionState {
    const tx = this.txs.get(txId);
    if (!tx) {
      this.txs.set(txId, { state: 'aborted', legs: new Map() }); // tombstone
      return TransactionState.TRANSACTION_STATE_ABORTED;
    }
    if (tx.state === 'committed') throw new ServerError(Status.FAILED_PRECONDITION, `abort of committed ${txId}`);
    if (tx.state === 'prepared') {
      const debit = tx.legs.get('debit');
      if (debit) (this.accounts.get(debit.username) as Account).held -= debit.amount;
      tx.state = 'aborted';
    }
    return TransactionState.TRANSACTION_STATE_ABORTED;
  }

  implementation(): BankServiceImplementation {
    const unimplemented = async (): Promise<never> => {
      throw new ServerError(Status.UNIMPLEMENTED, 'not in the test bank');
    };
    const calls: BankCalls = {
      authenticate: unimplemented,
      getBalance: unimplemented,
      listTransactions: unimplemented,
      prepareDebit: (req, ctx) => this.prepareCall('debit', req, ctx),
      prepareCredit: (req, ctx) => this.prepareCall('credit', req, ctx),
      commit: async (req) => {
        this.calls.commit++;
        if (this.commitFailures > 0) {
          this.commitFailures--;
          throw new ServerError(Status.UNAVAILABLE, 'temporarily unavailable');
        }
        return { state: this.commit(req.transactionId) };
      },
      abort: async (req) => {
        this.calls.abort++;
        return { state: this.abort(req.transactionId) };
      },
      // The batch RPCs the gateway's driver uses: each item counts as one call of its kind.
      prepareBatch: async (req, ctx) => {
        this.calls.prepare += req.legs.length;
        for (const l of req.legs) this.onPrepare?.(l.transactionId);
        if (this.hangPrepare) await delay(ctx.signal, 60_000);
        return { votes: req.legs.map((l) => this.prepare(l.kind === WireLegKind.LEG_KIND_DEBIT ? 'debit' : 'credit', l)) };
      },
      commitBatch: async (req) => {
        this.calls.commit += req.transactionIds.length;
        if (this.commitFailures > 0) {
          this.commitFailures--;
          throw new ServerError(Status.UNAVAILABLE, 'temporarily unavailable');
        }
        return { states: req.transactionIds.map((id) => this.commit(id)) };
      },
      abortBatch: async (req) => {
        this.calls.abort += req.transactionIds.length;
        return { states: req.transactionIds.map((id) => this.abort(id)) };
      },
    };
    // The same batch calls as messages on one stream (what the gateway uses), as at a real bank.
    return { ...calls, batchStream: new BatchStreams(logger).handler(calls) };
  }

  async start(certDir: string, port = 0): Promise<void> {
    const server = createNodeServer(logger, DEFAULT_CONFIG.logging);
    server.add(BankServiceDefinition, this.implementation());
    this.port = await listenTls(server, '127.0.0.1', port, loadTls(certDir, this.name));
    this.server = server;
  }

  stop(): void {
    this.server?.forceShutdown();
    this.server = undefined;
  }
}

interface Harness {
  readonly dataDir: string;
  readonly banks: Map<string, TestBank>;
  readonly config: Config;
  engine: TransferEngine;
  store: SqliteTransferLog;
  bankClients: BankClients;
  /** A new engine (and store, channels) on the same data dir, as after a gateway restart. */
  restart(): Promise<void>;
}

const alice: AccountRef = { bank: 'BankA', username: 'alice' };
const bob: AccountRef = { bank: 'BankB', username: 'bob' };
const carol: AccountRef = { bank: 'BankA', username: 'carol' };

/** Polls `cond`; the bound only keeps a broken engine from hanging the suite (CI machines are slow). */
async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function expectAppError(p: Promise<unknown>, reason: string): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(AppError);
    expect((err as AppError).reason, (err as AppError).message).to.equal(reason);
    return err as AppError;
  }
  throw new Error(`expected AppError ${reason}, got success`);
}

describe('transfer engine (real gRPC banks over mTLS, real SQLite)', function () {
  this.timeout(20_000);
  let certDir: string;
  const tmpDirs: string[] = [];
  const harnesses: Harness[] = [];

  before(() => {
    certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'engine-certs-'));
    tmpDirs.push(certDir);
    execFileSync('bash', ['scripts/gen-certs.sh', certDir, 'BankA', 'BankB'], { stdio: 'ignore' });
  });

  after(() => {
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  });

  afterEach(async () => {
    for (const h of harnesses.splice(0)) {
      await h.engine.stop(0);
      h.bankClients.close();
      for (const b of h.banks.values()) b.stop();
    }
  });

  /** Starts the test banks and an engine. Banks in `undiscovered` run but are not in discovery. */
  async function setup(opts: { gateway?: Partial<Config['gateway']>; undiscovered?: string[] } = {}): Promise<Harness> {
    const banks = new Map([
      ['BankA', new TestBank('BankA').account('alice', 10_000n).account('carol', 0n)],
      ['BankB', new TestBank('BankB').account('bob', 0n).account('yen', 0n, 'JPY')],
    ]);
    for (const b of banks.values()) await b.start(certDir);
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'engine-data-'));
    tmpDirs.push(dataDir);
    const bankEntries = [...banks.values()]
      .filter((b) => !opts.undiscovered?.includes(b.name))
      .map((b) => [b.name, { host: '127.0.0.1', port: b.port, dataDir: 'unused' }]);
    const config = ConfigSchema.parse({
      banks: Object.fromEntries(bankEntries),
      gateway: {
        dataDir,
        prepareTimeoutMs: 3000,
        replyAckWaitMs: 1000,
        commitRetryIntervalMs: 20,
        commitRetryMaxIntervalMs: 100,
        phase2CallTimeoutMs: 1000,
        ...opts.gateway,
      },
    });
    const open = async () => {
      const store = openSqliteLog(dataDir, { groupCommit: config.gateway, clock: systemClock });
      const bankClients = new BankClients(new StaticDiscovery(config), loadTls(certDir, 'gateway'), logger, {
        callTimeoutMs: 2000,
        retryMaxAttempts: 1,
        retryBaseDelayMs: 50,
        retryMaxDelayMs: 200,
        ...config.grpc,
      }, systemClock, config.gateway.bankBatchStream);
      const engine = new TransferEngine({ store, bankClients, limits: config.gateway, logger, clock: systemClock, random: systemRandom() });
      await engine.start();
      return { store, bankClients, engine };
    };
    const h: Harness = {
      dataDir,
      banks,
      config,
      ...(await open()),
      async restart() {
        await h.engine.stop(0);
        h.bankClients.close();
        Object.assign(h, await open());
      },
    };
    harnesses.push(h);
    return h;
  }

  const bank = (h: Harness, name: string) => h.banks.get(name) as TestBank;
  const input = (to: AccountRef, amountMinor: bigint, idempotencyKey = newId(), currency = 'EUR') => ({ idempotencyKey, to, amountMinor, currency });

  it('commits a cross-bank transfer, moving money exactly once; a replay returns the stored view', async () => {
    const h = await setup();
    const req = input(bob, 1250n);
    const view = await h.engine.create(alice, req);
    expect(view).to.deep.include({ status: 'committed', amountMinor: 1250n, currency: 'EUR', idempotencyKey: req.idempotencyKey });
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 8750n, held: 0n });
    expect(bank(h, 'BankB').balance('bob')).to.deep.equal({ balance: 1250n, held: 0n });
    // The durable commit decision is what the answer rests on; the completion record follows in
    // the store's next group commit.
    expect(h.store.findById(view.transactionId)?.state).to.be.oneOf(['committing', 'committed']);
    await waitFor('the completion record', () => h.store.findById(view.transactionId)?.state === 'committed');

    const prepares = bank(h, 'BankA').calls.prepare + bank(h, 'BankB').calls.prepare;
    const again = await h.engine.create(alice, req);
    expect(again).to.deep.equal(view);
    expect(bank(h, 'BankA').calls.prepare + bank(h, 'BankB').calls.prepare).to.equal(prepares);
    expect(bank(h, 'BankA').balance('alice').balance).to.equal(8750n);
    expect(await h.engine.get(alice, req.idempotencyKey)).to.deep.equal(view);
    expect(await h.engine.get(bob, req.idempotencyKey)).to.equal(undefined); // keys are scoped to the owner
  });

  it('sends the prepares beside the begin record; a bank asking before it is durable hears "pending"', async () => {
    // A 50 ms group-commit window keeps the begin record queued while the banks already prepare.
    const h = await setup({ gateway: { persistBatchWindowMs: 50 } });
    // A first transfer opens the streams to both banks (a new stream waits for its connection).
    expect((await h.engine.create(alice, input(bob, 100n))).status).to.equal('committed');
    const seen: { stored: boolean; answer: Promise<string> }[] = [];
    bank(h, 'BankA').onPrepare = (txId) => {
      seen.push({ stored: h.store.findById(txId) !== undefined, answer: h.engine.decisionOf(txId) });
    };
    const view = await h.engine.create(alice, input(bob, 700n));
    expect(view.status).to.equal('committed');
    expect(seen.map((s) => s.stored)).to.deep.equal([false]);
    expect(await Promise.all(seen.map((s) => s.answer))).to.deep.equal(['pending']);
    expect(await h.engine.decisionOf(view.transactionId)).to.equal('commit');
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 9200n, held: 0n });
    // Not in the log and driven by no run: never begun here, or its begin record never became durable.
    expect(await h.engine.decisionOf(newId())).to.equal('abort');
  });

  it('commits a same-bank transfer with a single Commit', async () => {
    const h = await setup();
    const view = await h.engine.create(alice, input(carol, 500n));
    expect(view.status).to.equal('committed');
    expect(bank(h, 'BankA').balance('alice').balance).to.equal(9500n);
    expect(bank(h, 'BankA').balance('carol').balance).to.equal(500n);
    expect(bank(h, 'BankA').calls).to.deep.equal({ prepare: 2, commit: 1, abort: 0 });
  });

  it('a NO vote aborts with the bank reason and releases the other leg; the replay throws it again', async () => {
    const h = await setup();
    const missing = input({ bank: 'BankB', username: 'nobody' }, 700n);
    await expectAppError(h.engine.create(alice, missing), 'ACCOUNT_NOT_FOUND');
    await waitFor('the debit hold to be released', () => bank(h, 'BankA').balance('alice').held === 0n);
    expect(bank(h, 'BankA').balance('alice').balance).to.equal(10_000n);
    await waitFor('the transfer to be final', () => h.store.findByKey(alice, missing.idempotencyKey)?.state === 'aborted');

    const prepares = bank(h, 'BankA').calls.prepare + bank(h, 'BankB').calls.prepare;
    const replayed = await expectAppError(h.engine.create(alice, missing), 'ACCOUNT_NOT_FOUND');
    expect(replayed.code).to.equal('NOT_FOUND');
    expect(bank(h, 'BankA').calls.prepare + bank(h, 'BankB').calls.prepare).to.equal(prepares);
    expect(await h.engine.get(alice, missing.idempotencyKey)).to.deep.include({ status: 'aborted' });

    await expectAppError(h.engine.create(alice, input(bob, 1_000_000n)), 'INSUFFICIENT_FUNDS');
    await expectAppError(h.engine.create(alice, input({ bank: 'BankB', username: 'yen' }, 5n)), 'CURRENCY_MISMATCH');
    await waitFor('holds released', () => bank(h, 'BankA').balance('alice').held === 0n);
    expect(bank(h, 'BankB').balance('bob').balance).to.equal(0n);
  });

  it('a bank unknown to discovery aborts at once with BANK_UNAVAILABLE', async () => {
    // A prepare deadline far beyond the test's timeout: BANK_UNAVAILABLE (not PREPARE_TIMEOUT)
    // shows the transfer was refused without waiting for it.
    const h = await setup({ undiscovered: ['BankB'], gateway: { prepareTimeoutMs: 600_000 } });
    await expectAppError(h.engine.create(alice, input(bob, 100n)), 'BANK_UNAVAILABLE');
    await waitFor('the debit hold to be released', () => bank(h, 'BankA').balance('alice').held === 0n);
    expect(bank(h, 'BankB').calls.prepare).to.equal(0);
  });

  it('a bank that is down aborts fast with BANK_UNAVAILABLE', async () => {
    // As above: the refused connection answers, not the (distant) prepare deadline.
    const h = await setup({ gateway: { prepareTimeoutMs: 600_000 } });
    bank(h, 'BankB').stop();
    await expectAppError(h.engine.create(alice, input(bob, 100n)), 'BANK_UNAVAILABLE');
    await waitFor('the debit hold to be released', () => bank(h, 'BankA').balance('alice').held === 0n);
    // BankB may have seen nothing, but it gets an Abort (tombstone) when it is back: still awaited.
    await waitFor('BankA to acknowledge its Abort', async () => (await h.engine.listUnfinished(10))[0]?.awaiting.length === 1);
    const rows = await h.engine.listUnfinished(10);
    expect(rows.map((r) => [r.state, r.awaiting])).to.deep.equal([['aborting', ['BankB']]]);
  });

  it('a hanging bank aborts with PREPARE_TIMEOUT at the prepare deadline', async () => {
    const h = await setup({ gateway: { prepareTimeoutMs: 300 } });
    bank(h, 'BankB').hangPrepare = true;
    const started = Date.now();
    const req = input(bob, 100n);
    await expectAppError(h.engine.create(alice, req), 'PREPARE_TIMEOUT');
    // Not before the deadline (timers never fire early; 10 ms for clock granularity).
    expect(Date.now() - started).to.be.at.least(290);
    await waitFor('the debit hold to be released', () => bank(h, 'BankA').balance('alice').held === 0n);
    await waitFor('the transfer to be final', () => h.store.findByKey(alice, req.idempotencyKey)?.state === 'aborted');
    expect(bank(h, 'BankB').txs.get(h.store.findByKey(alice, req.idempotencyKey)?.tx.id as string)?.state).to.equal('aborted');
  });

  it('refuses a key reused with other parameters (IDEMPOTENCY_KEY_REUSED)', async () => {
    const h = await setup();
    const req = input(bob, 100n);
    await h.engine.create(alice, req);
    const err = await expectAppError(h.engine.create(alice, { ...req, amountMinor: 101n }), 'IDEMPOTENCY_KEY_REUSED');
    expect(err.code).to.equal('ALREADY_EXISTS');
    expect(err.message).to.match(/already used/);
    await expectAppError(h.engine.create(alice, { ...req, to: carol }), 'IDEMPOTENCY_KEY_REUSED');
    expect(bank(h, 'BankB').balance('bob').balance).to.equal(100n);
  });

  it('runs one 2PC for concurrent duplicates of a request', async () => {
    const h = await setup();
    const req = input(bob, 300n);
    const views = await Promise.all(Array.from({ length: 5 }, () => h.engine.create(alice, req)));
    expect(new Set(views.map((v) => v.transactionId)).size).to.equal(1);
    expect(bank(h, 'BankA').calls.prepare).to.equal(1);
    expect(bank(h, 'BankB').calls.prepare).to.equal(1);
    expect(bank(h, 'BankB').balance('bob').balance).to.equal(300n);
    // A concurrent duplicate with other parameters is refused, not merged.
    const other = input(bob, 1n);
    const results = await Promise.allSettled([h.engine.create(alice, other), h.engine.create(alice, { ...other, amountMinor: 2n })]);
    expect(results[0].status).to.equal('fulfilled');
    expect(results[1].status === 'rejected' && (results[1].reason as AppError).reason).to.equal('IDEMPOTENCY_KEY_REUSED');
  });

  it('recovers after a restart: preparing -> abort (holds released), committing -> commit', async () => {
    const h = await setup();
    await h.engine.stop(0);
    const mkTx = (to: AccountRef, amountMinor: bigint): Tx => ({
      id: newId(), idempotencyKey: newId(), from: alice, to, amountMinor, currency: 'EUR', createdAtMs: Date.now(),
    });
    // Crash right after both prepares were answered yes, before the decision: presumed abort.
    const undecided = mkTx(bob, 1000n);
    // Crash after the commit decision was written, before any Commit reached a bank.
    const decided = mkTx(bob, 2000n);
    const store = openSqliteLog(h.dataDir, storeOptions());
    for (const tx of [undecided, decided]) {
      store.append({ type: 'begin', tx }, Date.now());
      const base = { transactionId: tx.id, amountMinor: tx.amountMinor, currency: 'EUR' };
      expect(bank(h, 'BankA').prepare('debit', { ...base, username: 'alice' }).vote).to.equal(Vote.VOTE_YES);
      expect(bank(h, 'BankB').prepare('credit', { ...base, username: 'bob' }).vote).to.equal(Vote.VOTE_YES);
    }
    store.append({ type: 'decision', txId: decided.id, decision: 'commit', awaiting: ['BankA', 'BankB'] }, Date.now());
    expect(store.listUnfinished(10).map((r) => r.state)).to.deep.equal(['preparing', 'committing']);
    store.close();
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 10_000n, held: 3000n });

    await h.restart();
    // The presumed-abort decision is durable as soon as start() returns.
    expect(h.store.findById(undecided.id)?.state).to.be.oneOf(['aborting', 'aborted']);
    await waitFor('recovery to finish', async () => (await h.engine.listUnfinished(10)).length === 0);
    expect(h.store.findById(undecided.id)).to.deep.include({ state: 'aborted', failure: PRESUMED_ABORT });
    expect(h.store.findById(decided.id)?.state).to.equal('committed');
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 8000n, held: 0n });
    expect(bank(h, 'BankB').balance('bob')).to.deep.equal({ balance: 2000n, held: 0n });

    // Replays after the restart answer from the store.
    await expectAppError(h.engine.create(alice, input(bob, 1000n, undecided.idempotencyKey)), 'TRANSACTION_ABORTED');
    const view = await h.engine.create(alice, input(bob, 2000n, decided.idempotencyKey));
    expect(view).to.deep.include({ transactionId: decided.id, status: 'committed' });
  });

  it('a transfer whose decision could not be written is aborted once the log works again, without a restart', async () => {
    const h = await setup({ gateway: { strandedRetryIntervalMs: 20 } });
    const disk = refuseRecords(h.store, (r) => r.type === 'decision');
    const req = input(bob, 100n);
    await expectAppError(h.engine.create(alice, req), 'INTERNAL');
    const txId = h.store.findByKey(alice, req.idempotencyKey)?.tx.id as string;
    expect(h.store.findById(txId)?.state).to.equal('preparing');
    // While the log cannot write, nothing can be decided: the banks keep their holds and hear "pending".
    await waitFor('later attempts at a decision', () => disk.refused >= 3);
    expect(h.store.findById(txId)?.state).to.equal('preparing');
    expect(await h.engine.decisionOf(txId)).to.equal('pending');
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 10_000n, held: 100n });

    disk.failing = false;
    // Presumed abort, as recovery at a restart would do: the decision is durable, then both banks abort.
    await waitFor('the transfer to be final', () => h.store.findById(txId)?.state === 'aborted');
    expect(h.store.findById(txId)).to.deep.include({ failure: PRESUMED_ABORT });
    expect(await h.engine.decisionOf(txId)).to.equal('abort');
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 10_000n, held: 0n });
    expect(bank(h, 'BankB').txs.get(txId)?.state).to.equal('aborted');
    // The retry with the same key hears the outcome instead of TRANSFER_IN_PROGRESS.
    await expectAppError(h.engine.create(alice, req), 'TRANSACTION_ABORTED');
    expect(bank(h, 'BankA').calls.prepare).to.equal(1);
  });

  it('phase-2 records that could not be written are written once the log works again, without a restart', async () => {
    const h = await setup({ gateway: { strandedRetryIntervalMs: 20 } });
    const disk = refuseRecords(h.store, (r) => r.type === 'ack' || r.type === 'completed');
    const view = await h.engine.create(alice, input(bob, 300n));
    expect(view.status).to.equal('committed');
    await waitFor('both commits to be applied', () => bank(h, 'BankB').balance('bob').balance === 300n && bank(h, 'BankA').balance('alice').held === 0n);
    // The log is behind: the banks committed, the row still awaits their acks. Phase 2 is repeated
    // from it while the log cannot write.
    await waitFor('phase 2 to be repeated', () => bank(h, 'BankB').calls.commit >= 2 && disk.refused >= 2);
    expect(h.store.findById(view.transactionId)?.state).to.equal('committing');

    disk.failing = false;
    await waitFor('the log to catch up', () => h.store.findById(view.transactionId)?.state === 'committed');
    expect(await h.engine.listUnfinished(10)).to.deep.equal([]);
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 9700n, held: 0n });
    expect(bank(h, 'BankB').balance('bob')).to.deep.equal({ balance: 300n, held: 0n });
  });

  it('a transfer whose begin record could not be written is never decided: its banks are told "abort" at once, the retry is its first run', async () => {
    const h = await setup({ gateway: { strandedRetryIntervalMs: 20 } });
    // A first transfer opens the streams, so that the next prepares leave beside the begin record.
    expect((await h.engine.create(alice, input(bob, 1n))).status).to.equal('committed');
    // The log fails the begin record (as on a full disk) once its prepare has reached BankA.
    let diskFull = true;
    let failBegin: (() => void) | undefined;
    const enqueue = h.store.enqueue.bind(h.store);
    h.store.enqueue = (record, nowMs, onDurable, urgent) => {
      if (diskFull && record.type === 'begin') failBegin = () => onDurable?.(new Error('SQLITE_FULL: database or disk is full'));
      else enqueue(record, nowMs, onDurable, urgent);
    };
    const prepared: string[] = [];
    bank(h, 'BankA').onPrepare = (txId) => {
      prepared.push(txId);
      const fail = failBegin;
      failBegin = undefined;
      if (fail) setImmediate(fail);
    };
    const req = input(bob, 100n);
    await expectAppError(h.engine.create(alice, req), 'INTERNAL');
    expect(h.store.findByKey(alice, req.idempotencyKey)).to.equal(undefined);
    // Its prepare had left and BankA held the money: the gateway aborts it there without waiting
    // for BankA to ask, and without a record (abort is presumed: a bank that asks hears the same).
    expect(prepared).to.have.length(1);
    const [failedTx] = prepared as [string];
    await waitFor('the Abort to reach BankA', () => bank(h, 'BankA').txs.get(failedTx)?.state === 'aborted');
    // A prepared leg released (not a tombstone for an Abort that came first), and nothing held.
    expect(bank(h, 'BankA').txs.get(failedTx)?.legs.has('debit')).to.equal(true);
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 9999n, held: 0n });
    // BankB is told too, whether its prepare came before (released) or not at all (fenced).
    await waitFor('the Abort to reach BankB', () => bank(h, 'BankB').txs.get(failedTx)?.state === 'aborted');
    expect(bank(h, 'BankB').prepare('credit', { transactionId: failedTx, username: 'bob', amountMinor: 100n, currency: 'EUR' }).vote).to.equal(Vote.VOTE_NO);
    expect(await h.engine.decisionOf(failedTx)).to.equal('abort');
    expect(h.store.findById(failedTx)).to.equal(undefined);

    diskFull = false;
    const view = await h.engine.create(alice, req);
    expect(view.status).to.equal('committed');
    expect(view.transactionId).to.not.equal(failedTx);
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 9899n, held: 0n });
    expect(await h.engine.decisionOf(failedTx)).to.equal('abort');
  });

  it('retries phase 2 until a temporarily failing bank acknowledges', async () => {
    const h = await setup({ gateway: { replyAckWaitMs: 100 } });
    bank(h, 'BankB').commitFailures = 3;
    const req = input(bob, 400n);
    const view = await h.engine.create(alice, req);
    expect(view.status).to.equal('committed'); // the decision is final: the caller is not kept waiting
    await waitFor('the commit to reach BankB', () => bank(h, 'BankB').balance('bob').balance === 400n);
    expect(bank(h, 'BankB').calls.commit).to.equal(4);
    await waitFor('the transfer to be final', () => h.store.findById(view.transactionId)?.state === 'committed');
    expect(bank(h, 'BankA').balance('alice')).to.deep.equal({ balance: 9600n, held: 0n });
  });

  it('keeps retrying a decided commit across a restart', async () => {
    const h = await setup({ gateway: { replyAckWaitMs: 100 } });
    bank(h, 'BankB').commitFailures = 1_000_000;
    const view = await h.engine.create(alice, input(bob, 250n));
    expect(view.status).to.equal('committed');
    expect(h.store.findById(view.transactionId)).to.deep.include({ state: 'committing', awaiting: ['BankB'] });
    await h.restart();
    bank(h, 'BankB').commitFailures = 0;
    await waitFor('the commit to reach BankB', () => h.store.findById(view.transactionId)?.state === 'committed');
    expect(bank(h, 'BankB').balance('bob').balance).to.equal(250n);
    expect(bank(h, 'BankA').balance('alice').balance).to.equal(9750n);
  });

  it('bounds in-flight transfers (OVERLOADED) and refuses new ones once stopping (SHUTTING_DOWN)', async () => {
    const h = await setup({ gateway: { inFlightTransfersMax: 1, prepareTimeoutMs: 500 } });
    bank(h, 'BankB').hangPrepare = true;
    const first = h.engine.create(alice, input(bob, 1n));
    const err = await expectAppError(h.engine.create(alice, input(bob, 2n)), 'OVERLOADED');
    expect(err.code).to.equal('RESOURCE_EXHAUSTED');
    await expectAppError(first, 'PREPARE_TIMEOUT');
    await h.engine.stop(1000);
    await expectAppError(h.engine.create(alice, input(bob, 3n)), 'SHUTTING_DOWN');
  });
});

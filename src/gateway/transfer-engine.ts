import { assert } from '../core/assert.js';
import { sleep, type Clock, type Timer } from '../core/clock.js';
import { repeat, type Repeating } from '../core/repeat.js';
import { AppError, errorText } from '../core/errors.js';
import { isName, isUuid, newTimeOrderedId } from '../core/ids.js';
import { formatAmount, isCurrency } from '../core/money.js';
import type { Random } from '../core/random.js';
import { testBugs } from '../core/test-bugs.js';
import { sameTerms, type AccountRef, type TransferStatus, type TransferTerms, type TransferView } from '../core/transfer.js';
import { isFinal, recover, step, type DurableState, type Outcome, type Tx } from '../coordinator/index.js';
import type { Logger } from '../logging/logger.js';
import { OutageLog } from '../logging/outage.js';
import { LeaseKeeper } from './leases.js';
import { RecordRefused, type StoredTransfer, type TransferLog } from './store/transfer-log.js';
import { TransferDriver, type BankClientSource, type DriverLimits, type TransferObserver } from './transfer-driver.js';
import type { CreateTransferInput, Decided, Transfers } from './transfers.js';

// The Transfers implementation: idempotency (keys scoped to the owner, replays return the first
// answer, STYLE §6), the in-flight bound, recovery at start and a graceful stop. The 2PC itself is
// the pure coordinator (src/coordinator) executed by the TransferDriver.

export interface TransferEngineLimits extends DriverLimits {
  /** Transfers being driven at once (waiting for their answer or in phase 2). */
  readonly inFlightTransfersMax: number;
  /** Final transfers (and so their idempotency keys) are kept at least this long. */
  readonly idempotencyRetentionHours: number;
  /** How often expired keys are pruned. */
  readonly idempotencyPruneIntervalMs: number;
  /** How often a request waiting on a transfer another gateway runs re-reads the log. */
  readonly transferPollIntervalMs: number;
  /** How often transfers stranded by a failed log write are handed on (driven again, or released to a takeover). */
  readonly strandedRetryIntervalMs: number;
  /** Shared log only (several gateways): lease upkeep. */
  readonly leaseRenewIntervalMs: number;
  readonly takeoverIntervalMs: number;
  readonly takeoverBatchMax: number;
  /** Rows deleted per pruning transaction (a short write lock each). */
  readonly idempotencyPruneBatchMax: number;
  /** Pruning transactions per round at most; a larger backlog is worked off over the next rounds. */
  readonly idempotencyPruneBatchesPerRoundMax: number;
}

const HOUR_MS = 3_600_000;

export interface TransferEngineOptions {
  /** The durable coordinator log (either backend). */
  readonly store: TransferLog;
  readonly bankClients: BankClientSource;
  /** `config.gateway` fits. */
  readonly limits: TransferEngineLimits;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Transaction ids and phase-2 retry jitter. */
  readonly random: Random;
  /** Told of each decision and each finished phase 2 (the gateway's metrics). */
  readonly observer?: TransferObserver;
}

/** A create() of one owner-scoped key, from its log lookup to its answer. */
interface InFlight {
  readonly input: CreateTransferInput;
  /** The transfer started here for it (its key claim may still be refused). */
  readonly tx: Tx | undefined;
  readonly answer: Promise<TransferView>;
}

type EngineState = 'new' | 'running' | 'stopping' | 'stopped';

export class TransferEngine implements Transfers {
  private readonly store: TransferLog;
  private readonly driver: TransferDriver;
  private readonly limits: TransferEngineLimits;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly random: Random;
  /** Transfers whose caller is still waiting, by owner-scoped idempotency key. */
  private readonly inFlight = new Map<string, InFlight>();
  private state: EngineState = 'new';
  private pruning: Repeating | undefined;
  /** Present when the log is shared with other gateways. */
  private readonly leaseKeeper: LeaseKeeper | undefined;
  /**
   * Transfers a log write failed for, each marked once a sweep has driven it again (its next
   * failure is then part of an outage already logged).
   */
  private readonly stranded = new Map<string, { redriven: boolean }>();
  private strandedSweep: Repeating | undefined;
  private readonly strandedOutage: OutageLog;

  constructor(options: TransferEngineOptions) {
    const { limits } = options;
    assert(limits.prepareTimeoutMs > 0 && limits.replyAckWaitMs >= 0, 'transfer engine: prepareTimeoutMs must be positive, replyAckWaitMs >= 0');
    assert(limits.commitRetryIntervalMs > 0 && limits.commitRetryIntervalMs <= limits.commitRetryMaxIntervalMs,
      'transfer engine: need 0 < commitRetryIntervalMs <= commitRetryMaxIntervalMs');
    assert(limits.inFlightTransfersMax > 0, 'transfer engine: inFlightTransfersMax must be positive');
    this.store = options.store;
    // With a log of its own, this gateway alone answers the banks' decision queries, so the
    // prepares may leave beside the begin record (decisionOf knows the runs not yet durable).
    // A shared log could be asked by another gateway that knows nothing of such a run.
    this.limits = { ...limits, prepareWithBegin: options.store.leases === undefined };
    this.logger = options.logger;
    this.clock = options.clock;
    this.random = options.random;
    this.driver = new TransferDriver({
      log: options.store,
      bankClients: options.bankClients,
      limits: this.limits,
      logger: options.logger,
      clock: this.clock,
      random: this.random,
      ...(options.observer ? { observer: options.observer } : {}),
      onStranded: (txId, err) => this.onStranded(txId, err),
    });
    this.strandedOutage = new OutageLog(this.logger, 'the transfer log still cannot write; stranded transfers stay undecided', 'the transfer log writes again');
    const { leases } = options.store;
    this.leaseKeeper = leases && new LeaseKeeper(leases, limits, this.clock, this.logger, (rows) => this.resume(rows));
  }

  /**
   * Drives transfers read from the log (recovery at start, or taken over from another gateway):
   * presumed abort for undecided ones, phase 2 for decided ones. One already driven here (its
   * lease lapsed while this gateway was slow and it took it back) just goes on.
   */
  private resume(rows: readonly StoredTransfer[]): void {
    const { phases, effects } = recover(rows);
    for (const [txId, phase] of phases) {
      if (this.driver.isActive(txId)) continue;
      const todo = effects.get(txId) ?? [];
      if (isFinal(phase) && todo.length === 0) continue;
      this.driver.run(phase, todo);
    }
  }

  /**
   * The log could not write one of a transfer's records (a full disk, an I/O error, a lost database
   * connection). An awaited one stopped its run: left alone, the transfer would stay undecided, its
   * holds at the banks and its key answering TRANSFER_IN_PROGRESS, until the next restart. A phase-2
   * one (ack, completion) leaves the log behind what happened. Either way, once no run drives it
   * here, the sweep hands it on: an own log drives it again from what is on disk, a shared log lets
   * its lease lapse so that a takeover (here or at another gateway) does, as after a crash.
   */
  private onStranded(txId: string, err: Error): void {
    if (testBugs.strandedLeftUndriven) return;
    const entry = this.stranded.get(txId);
    if (!entry) {
      this.logger.error('could not write a transfer record; once the log writes, the transfer is finished from what it holds', { transactionId: txId, error: err.message });
      this.stranded.set(txId, { redriven: false });
    } else if (entry.redriven) this.strandedOutage.failed(err);
  }

  /**
   * Drives each stranded transfer that no run drives any more again from its row, as recovery
   * would: presumed abort if it is undecided, phase 2 if it is decided. One whose begin record
   * never became durable is not in the log, and nothing is left to do: the driver told its banks
   * "abort" (TransferDriver.releasePrepares), and a bank that asks hears the same (decisionOf). A
   * shared log's transfer is released to a takeover instead.
   */
  private async sweepStranded(): Promise<void> {
    for (const [txId, entry] of [...this.stranded]) {
      if (this.state !== 'running') return;
      if (this.driver.isActive(txId)) continue;
      const { leases } = this.store;
      if (leases) {
        leases.release(txId);
        this.stranded.delete(txId);
        continue;
      }
      const row = await this.store.findById(txId);
      if (row === undefined || isFinalState(row.state)) {
        this.stranded.delete(txId);
        if (entry.redriven) this.strandedOutage.ok();
        continue;
      }
      entry.redriven = true;
      this.resume([row]);
    }
  }

  /** Transfers being driven now (answer pending or phase 2 in progress). */
  get activeTransfers(): number {
    return this.driver.active;
  }

  async start(): Promise<void> {
    assert(this.state === 'new', `transfer engine: start() while ${this.state}`);
    // With a shared log, this gateway recovers only what it can claim: expired leases (its own
    // from before a crash, or anyone's); transfers other live gateways are driving stay theirs.
    const rows = this.leaseKeeper ? [] : await this.store.unfinished();
    const undecided = rows.filter((r) => r.state === 'preparing').length;
    this.resume(rows);
    // Presumed-abort decisions are durable before start() resolves (their Aborts leave after this).
    await this.store.flush();
    this.state = 'running';
    if (this.leaseKeeper) {
      const taken = await this.leaseKeeper.takeOverOnce();
      await this.store.flush();
      this.leaseKeeper.start();
      this.logger.info('transfer recovery done (shared log)', { instance: this.store.leases?.instanceId, takenOver: taken, resumed: this.driver.active });
    } else {
      this.logger.info('transfer recovery done', { unfinished: rows.length, presumedAborted: undecided, resumed: this.driver.active });
    }
    await this.pruneExpired();
    // stop() may have come meanwhile (the compiler's narrowing does not see past the awaits).
    if ((this.state as EngineState) !== 'running') return;
    // Runs whether or not a transfer is stranded now: a round with none reads nothing.
    this.strandedSweep = repeat(this.clock, {
      intervalMs: this.limits.strandedRetryIntervalMs,
      onError: (e) => this.strandedOutage.failed(e),
    }, () => this.sweepStranded());
    this.pruning = repeat(this.clock, {
      intervalMs: this.limits.idempotencyPruneIntervalMs,
      // The next round tries again; a store that stays broken shows in every transfer too.
      onError: (err) => this.logger.warn('pruning expired idempotency keys failed', { error: errorText(err) }),
    }, () => this.pruneExpired());
  }

  /**
   * Deletes final transfers older than the retention (their keys become free again), in bounded
   * batches. Unfinished ones are never touched. Returns how many rows went.
   */
  async pruneExpired(): Promise<number> {
    if (this.state !== 'running' || !this.store.isOpen) return 0;
    const retentionMs = this.limits.idempotencyRetentionHours * HOUR_MS;
    const batch = this.limits.idempotencyPruneBatchMax;
    const beforeMs = this.clock.nowMs() - retentionMs;
    let pruned = 0;
    for (let i = 0; i < this.limits.idempotencyPruneBatchesPerRoundMax; i++) {
      if (this.state !== 'running' || !this.store.isOpen) break;
      const n = await this.store.pruneFinal(beforeMs, batch);
      pruned += n;
      if (n < batch) break;
    }
    if (pruned > 0) this.logger.info('pruned expired idempotency keys', { pruned, beforeMs });
    return pruned;
  }

  async decisionOf(txId: string): Promise<Decided> {
    if (this.state !== 'running' || !this.store.isOpen) {
      throw new AppError('SHUTTING_DOWN', 'the gateway is shutting down; ask again shortly');
    }
    const stored = await this.store.findById(txId);
    // Presumed abort: a transaction the log does not know was never begun, or its begin record
    // never became durable. A run driven here may still be writing it (its prepares left beside
    // it): that one is not decided yet. Once no run drives it, it never can be decided.
    if (!stored) return this.driver.isActive(txId) ? 'pending' : 'abort';
    return DECISION_OF[stored.state];
  }

  async create(owner: AccountRef, input: CreateTransferInput): Promise<TransferView> {
    assertValid(owner, input);
    assert(this.state !== 'new', 'transfer engine: create() before start()');
    if (this.state !== 'running') throw new AppError('SHUTTING_DOWN', 'the gateway is shutting down; retry shortly');

    const scope = scopeKey(owner, input.idempotencyKey);
    const running = this.inFlight.get(scope);
    if (running) {
      assertSameParams(running.input, running.tx?.idempotencyKey ?? input.idempotencyKey, input);
      return this.awaitFirst(running);
    }
    // A duplicate arriving while this create runs waits for it instead of starting its own; across
    // gateways the log's UNIQUE (owner, key) decides which request's transfer it is.
    let started: Tx | undefined;
    const entry: InFlight = {
      input,
      get tx() { return started; },
      answer: this.claimAndRun(owner, input, (tx) => { started = tx; }),
    };
    this.inFlight.set(scope, entry);
    const forget = () => this.inFlight.delete(scope);
    entry.answer.then(forget, forget);
    return entry.answer;
  }

  /**
   * The first create() of a key here. The begin record claims the key itself (the log's UNIQUE
   * (owner, key), one write, no read before it): a new key starts the transfer; a key that an
   * earlier transfer holds (here before, or at another gateway) is refused 'key_taken', and that
   * transfer's outcome is the answer (a replay), or is waited for while it runs.
   */
  private async claimAndRun(owner: AccountRef, input: CreateTransferInput, started: (tx: Tx) => void): Promise<TransferView> {
    // When the prepares leave beside the begin record, a replay must not get that far: the log is
    // this gateway's alone and duplicates in flight share one run, so a stored key is a replay.
    const replayed = this.limits.prepareWithBegin === true ? await this.store.findByKey(owner, input.idempotencyKey) : undefined;
    if (!replayed) {
      const tx = this.newTx(owner, input, input.idempotencyKey);
      started(tx);
      try {
        return viewOrThrow(tx, await this.begin(tx));
      } catch (err) {
        if (!(err instanceof RecordRefused && err.kind === 'key_taken')) throw err;
      }
    }
    if (testBugs.replayStartsSecondTransfer) {
      const stored = await this.store.findByKey(owner, input.idempotencyKey);
      if (stored && isFinalState(stored.state)) {
        // (The broken variant needs a fresh key: the log's UNIQUE key would refuse the old one.)
        const second = this.newTx(owner, input, newTimeOrderedId(this.clock.nowMs(), this.random));
        started(second);
        return viewOrThrow(second, await this.begin(second));
      }
    }
    return this.awaitStored(owner, input, replayed);
  }

  private newTx(owner: AccountRef, input: CreateTransferInput, idempotencyKey: string): Tx {
    if (this.driver.active >= this.limits.inFlightTransfersMax) {
      throw new AppError('OVERLOADED', `the gateway is handling ${this.driver.active} transfers, its limit; retry shortly`);
    }
    return {
      // Time-ordered: the banks' transaction and leg rows are appended, not scattered.
      id: newTimeOrderedId(this.clock.nowMs(), this.random),
      idempotencyKey,
      from: { bank: owner.bank, username: owner.username },
      to: { bank: input.to.bank, username: input.to.username },
      amountMinor: input.amountMinor,
      currency: input.currency,
      createdAtMs: this.clock.nowMs(),
    };
  }

  /**
   * The answer of a transfer this gateway is not running (another gateway runs it, or its owner
   * crashed and a takeover will decide it): re-read the log until it is decided, at most as long
   * as the first request's own bound, then TRANSFER_IN_PROGRESS.
   */
  private async awaitStored(owner: AccountRef, input: CreateTransferInput, read?: StoredTransfer): Promise<TransferView> {
    const untilMs = this.clock.nowMs() + this.limits.prepareTimeoutMs + this.limits.replyAckWaitMs;
    // `read`: the row the caller has just read, so the first round need not read it again.
    for (let first = read; ; first = undefined) {
      const stored = first ?? await this.store.findByKey(owner, input.idempotencyKey);
      // Gone: pruned after it was final, long ago; a key is never freed while its transfer runs.
      assert(stored, `transfer with key ${input.idempotencyKey} vanished from the log while running`);
      if (stored.state !== 'preparing') return this.replay(stored, input);
      assertSameParams(stored.tx, stored.tx.idempotencyKey, input);
      if (this.clock.nowMs() >= untilMs || this.state !== 'running') {
        throw new AppError('TRANSFER_IN_PROGRESS', 'a transfer with this idempotency key is still running; retry shortly with the same key');
      }
      await sleep(this.clock, this.limits.transferPollIntervalMs);
    }
  }

  async get(owner: AccountRef, idempotencyKey: string): Promise<TransferView | undefined> {
    if (!this.store.isOpen) throw new AppError('SHUTTING_DOWN', 'the gateway is shutting down; retry shortly');
    const stored = await this.store.findByKey(owner, idempotencyKey);
    if (stored) return viewOf(stored.tx, STATUS_OF[stored.state], stored.failure);
    // Running here, its begin record still in the store's next group commit.
    const tx = this.inFlight.get(scopeKey(owner, idempotencyKey))?.tx;
    return tx && viewOf(tx, 'pending');
  }

  /** Unfinished (undecided or in-doubt) transfers for operators, oldest first. */
  async listUnfinished(limit: number): Promise<StoredTransfer[]> {
    return this.store.listUnfinished(limit);
  }

  async stop(graceMs: number): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    this.pruning?.stop();
    this.strandedSweep?.stop();
    // Keep renewing through the grace period: the transfers still finishing here stay ours.
    // In-flight answers and phase-2 work both get the grace period; what is left is resumed by
    // recovery at the next start.
    let timer: Timer | undefined;
    const grace = new Promise<void>((resolve) => { timer = this.clock.setTimer(graceMs, resolve); });
    const answered = Promise.allSettled([...this.inFlight.values()].map((e) => e.answer));
    await Promise.race([Promise.all([answered, this.driver.idle()]), grace]);
    timer?.cancel();
    this.leaseKeeper?.stop();
    this.driver.stop();
    await this.store.close();
    this.state = 'stopped';
    this.logger.info('transfer engine stopped');
  }

  /** Persists the begin record (claiming the key) and starts 2PC; resolves with the outcome. */
  private begin(tx: Tx): Promise<Outcome> {
    const { phase, effects } = step(undefined, { type: 'begin', tx, nowMs: tx.createdAtMs }, this.limits);
    return new Promise<Outcome>((resolve, reject) => {
      this.driver.run(phase, effects, { onReply: resolve, onError: reject });
    });
  }

  /**
   * A duplicate of a request still running here: wait for the same run, never start another; at
   * most as long as the first one's own bound (prepareTimeoutMs + replyAckWaitMs), then
   * TRANSFER_IN_PROGRESS.
   */
  private async awaitFirst(running: InFlight): Promise<TransferView> {
    const waitMs = this.limits.prepareTimeoutMs + this.limits.replyAckWaitMs;
    let timer: Timer | undefined;
    const timeout = new Promise<'timeout'>((resolve) => { timer = this.clock.setTimer(waitMs, () => resolve('timeout')); });
    try {
      const first = await Promise.race([running.answer, timeout]);
      if (first === 'timeout') {
        throw new AppError('TRANSFER_IN_PROGRESS', 'a transfer with this idempotency key is still running; retry shortly with the same key');
      }
      return first;
    } finally {
      timer?.cancel();
    }
  }

  /** The stored answer to an earlier request with the same key. */
  private replay(stored: StoredTransfer, input: CreateTransferInput): TransferView {
    assertSameParams(stored.tx, stored.tx.idempotencyKey, input);
    switch (stored.state) {
      case 'committing':
      case 'committed':
        return viewOf(stored.tx, 'committed');
      case 'aborting':
      case 'aborted':
        assert(stored.failure, `transfer ${stored.tx.id} is ${stored.state} without a failure`);
        throw AppError.from(stored.failure);
      case 'preparing':
        // Undecided and not running here (awaitStored waits for such a transfer first).
        throw new AppError('TRANSFER_IN_PROGRESS', 'a transfer with this idempotency key is not finished yet; retry later with the same key');
    }
  }
}

const DECISION_OF: Readonly<Record<DurableState, 'commit' | 'abort' | 'pending'>> = {
  preparing: 'pending',
  committing: 'commit',
  committed: 'commit',
  aborting: 'abort',
  aborted: 'abort',
};

const STATUS_OF: Readonly<Record<DurableState, TransferStatus>> = {
  preparing: 'pending',
  // The commit decision is durable and final; phase 2 only delivers it.
  committing: 'committed',
  committed: 'committed',
  aborting: 'aborted',
  aborted: 'aborted',
};

function isFinalState(state: DurableState): boolean {
  return state === 'committed' || state === 'aborted';
}

function scopeKey(owner: AccountRef, idempotencyKey: string): string {
  return `${owner.bank}\u0000${owner.username}\u0000${idempotencyKey}`;
}

function assertValid(owner: AccountRef, input: CreateTransferInput): void {
  // The gateway service validates requests; reaching here with bad input is a bug.
  assert(isName(owner.bank) && isName(owner.username), 'create: invalid owner');
  assert(isName(input.to.bank) && isName(input.to.username), 'create: invalid recipient');
  assert(isUuid(input.idempotencyKey), 'create: idempotency key must be a UUID');
  assert(typeof input.amountMinor === 'bigint' && input.amountMinor > 0n, 'create: amount must be a positive bigint');
  assert(isCurrency(input.currency), `create: unknown currency ${input.currency}`);
  assert(owner.bank !== input.to.bank || owner.username !== input.to.username, 'create: same account');
}

/** `first` is the request (or stored transfer) that claimed the key. */
function assertSameParams(first: TransferTerms, key: string, input: CreateTransferInput): void {
  if (!sameTerms(first, input)) {
    throw new AppError(
      'IDEMPOTENCY_KEY_REUSED',
      `idempotency key ${key} was already used for a transfer of ${formatAmount(first.amountMinor, first.currency)} ${first.currency} `
        + `to ${first.to.username}@${first.to.bank}; use a new key for a different transfer`,
    );
  }
}

function viewOf(tx: Tx, status: TransferStatus, failure?: StoredTransfer['failure']): TransferView {
  return {
    transactionId: tx.id,
    idempotencyKey: tx.idempotencyKey,
    from: tx.from,
    to: tx.to,
    amountMinor: tx.amountMinor,
    currency: tx.currency,
    status,
    ...(failure ? { failure } : {}),
    createdAtMs: tx.createdAtMs,
  };
}

function viewOrThrow(tx: Tx, outcome: Outcome): TransferView {
  if (outcome.kind === 'aborted') throw AppError.from(outcome.failure);
  return viewOf(tx, 'committed');
}

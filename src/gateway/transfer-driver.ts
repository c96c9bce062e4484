import { AbortError, isAbortError } from 'abort-controller-x';
import { Status } from 'nice-grpc';
import { assert } from '../core/assert.js';
import { backoffMs, sleep, type Clock, type Timer } from '../core/clock.js';
import { AppError, errorText, type Failure } from '../core/errors.js';
import type { Random } from '../core/random.js';
import { isReason } from '../core/reasons.js';
import {
  banksOf,
  durableOutcome,
  isFinal,
  nextDeadlineMs,
  step,
  type BankId,
  type Effect,
  type Event,
  type Leg,
  type Limits,
  type LogRecord,
  type Outcome,
  type Phase,
  type Tx,
} from '../coordinator/index.js';
import { failpoint, failpointsArmed, type FailpointName } from '../failpoints/index.js';
import { LegKind, Vote, TransactionState, type PrepareVote } from '../gen/bank/v1/bank.js';
import { statusName, statusOf } from '../grpc/errors.js';
import { FILE_ONLY, type Logger } from '../logging/logger.js';
import { BankBatches, type BatchClientSource } from './bank-batches.js';
import { RecordRefused, type TransferLogWriter } from './store/transfer-log.js';

// Executes the coordinator's effects and feeds what happens back to it as events (STYLE §1, §2).
// Each transfer is a Run: its current phase, a queue of events, one tick timer and an
// AbortController that cancels its outstanding calls and retry sleeps.
//
// Persist, then send, is the coordinator's rule, not the driver's: effects run in list order and
// nothing here waits. A persist effect queues its record for the store's next group commit (many
// transfers' records share one transaction and one fsync); an `awaited` one goes in urgently, and
// once it is durable the driver steps a `persisted` event, whose effects are the sends (and the
// reply) that had to wait for it (etcd raft's async storage writes). The other records ride along
// with the next group commit and nobody waits for them.
//
// Bank calls are coalesced per bank (BankBatches: PrepareBatch / CommitBatch / AbortBatch per
// event-loop turn) and go over the lean client: the driver bounds, retries and logs them itself.
//
// The work is split into small named steps (deliver, perform, persist, sendPrepare, phase2Loop,
// phase2Attempt, reply, schedule, finish); crash points (src/failpoints) sit between them: after
// each record is durable, after each prepare leaves, when each vote and each phase-2 ack arrives.

/** Where banks are reached; BankClients implements it. */
export type BankClientSource = BatchClientSource;

export interface DriverLimits extends Limits {
  /** Deadline of one Commit/Abort call. */
  readonly phase2CallTimeoutMs: number;
  /** First delay between phase-2 retries; doubles up to commitRetryMaxIntervalMs. */
  readonly commitRetryIntervalMs: number;
  readonly commitRetryMaxIntervalMs: number;
  /** Items in one PrepareBatch / CommitBatch / AbortBatch call at most. */
  readonly bankBatchMaxItems: number;
  /** How long a queued bank call waits for others; 0 = until the end of the event-loop turn. */
  readonly bankBatchWindowMs: number;
}

export interface DriverOptions {
  /** The durable coordinator log (either backend of store/). */
  readonly log: TransferLogWriter;
  readonly bankClients: BankClientSource;
  readonly limits: DriverLimits;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Jitter of phase-2 retries. */
  readonly random: Random;
  readonly observer?: TransferObserver;
  /**
   * A record of this transfer could not be written. An awaited one stopped its run: the transfer
   * is left undecided (or its begin record's fate unknown). An ack or completion did not stop it:
   * the log is behind. Whoever is told logs it and, once no run drives it, drives it again from the
   * log.
   */
  readonly onStranded: (txId: string, err: Error) => void;
}

/**
 * Told what the transfers driven here do (the gateway's metrics). Durations are read from the
 * driver's clock: `prepareMs` from the begin record being durable (the prepares leave) to the
 * decision; `phase2Ms` from the decision being durable to the last acknowledgement.
 */
export interface TransferObserver {
  /** A decision made here is durable; `prepareMs` is undefined for a transfer recovered undecided (presumed abort). */
  decided(decision: 'commit' | 'abort', reason: string | undefined, prepareMs: number | undefined): void;
  /** Phase 2 of a decision made here ended: every bank acknowledged. */
  phase2Done(decision: 'commit' | 'abort', phase2Ms: number): void;
}

/** Who waits for a transfer's outcome (the CreateTransfer call). */
export interface ReplyHandlers {
  onReply(outcome: Outcome): void;
  onError(err: Error): void;
}

interface Run {
  phase: Phase;
  /** Effects still to perform, in order. */
  readonly todo: Effect[];
  readonly queue: Event[];
  busy: boolean;
  done: boolean;
  timer: Timer | undefined;
  readonly abort: AbortController;
  reply: ReplyHandlers | undefined;
  /** When the begin record became durable here (the prepares left); for the observer. */
  preparingSinceMs?: number;
  /** When the votes were in (the decision record was queued); for the observer. */
  decidingAtMs?: number;
  /** When a decision made here became durable; unset for a recovered decision. */
  decidedAtMs?: number;
}

/** The crash point right after a record of each type is durable. */
const PERSISTED_FAILPOINT: Readonly<Record<LogRecord['type'], FailpointName | undefined>> = {
  begin: 'gateway.after_begin_persisted',
  decision: 'gateway.after_decision_persisted',
  ack: undefined,
  completed: undefined,
};

/**
 * The reason every finished run aborts with: nothing reads it (its calls and sleeps reject with
 * their own AbortError), and abort() without one builds a DOMException with a stack trace per
 * transfer (2% of the gateway's time at C=32).
 */
const RUN_FINISHED = new AbortError();

/** Phase-2 failures are logged at warn on the first attempt and then every this many attempts. */
const PHASE2_WARN_EVERY_ATTEMPTS = 10;

export class TransferDriver {
  private readonly runs = new Map<string, Run>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly clock: Clock;
  private readonly batches: BankBatches;
  /** Aborted when the driver stops; cancels the calls that outlive their run (releasePrepares). */
  private readonly stopping = new AbortController();

  constructor(private readonly options: DriverOptions) {
    this.clock = options.clock;
    this.batches = new BankBatches(options.bankClients, options.limits, this.clock);
    // The sends that follow the records of a group commit leave right after it, not a turn later.
    options.log.onFlushed(() => this.batches.sendAll());
  }

  /** Transfers this driver is working on (before their reply or still in phase 2). */
  get active(): number {
    return this.runs.size;
  }

  isActive(txId: string): boolean {
    return this.runs.has(txId);
  }

  /**
   * Starts driving a transfer from `phase` by performing `effects` (the result of a `begin` step or
   * of recovery).
   */
  run(phase: Phase, effects: readonly Effect[], reply?: ReplyHandlers): void {
    assert(!this.stopping.signal.aborted, 'transfer driver is stopped');
    const txId = phase.tx.id;
    assert(!this.runs.has(txId), `transaction ${txId} is already being driven`);
    const run: Run = {
      phase, todo: [...effects], queue: [], busy: false, done: false, timer: undefined,
      abort: new AbortController(), reply,
    };
    this.runs.set(txId, run);
    this.drain(run);
  }

  /** Resolves when no transfer is being driven. */
  idle(): Promise<void> {
    if (this.runs.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops every run: cancels calls, retry sleeps and timers. Unfinished transfers stay in the
   * store and are resumed by recovery. A caller still waiting is answered now: with the decision
   * when it is durable (that is final), else SHUTTING_DOWN.
   */
  stop(): void {
    this.stopping.abort(RUN_FINISHED);
    for (const run of [...this.runs.values()]) {
      const outcome = durableOutcome(run.phase);
      if (outcome) this.reply(run, outcome);
      this.finish(run, new AppError('SHUTTING_DOWN', 'the gateway is shutting down; retry with the same idempotency key'));
    }
  }

  private deliver(run: Run, event: Event): void {
    if (run.done) return;
    run.queue.push(event);
    // Events raised while effects are being performed wait their turn: one step at a time.
    this.drain(run);
  }

  /** Performs pending effects, then steps queued events, until done or out of events. */
  private drain(run: Run): void {
    if (run.busy) return;
    run.busy = true;
    try {
      while (!run.done) {
        const effect = run.todo.shift();
        if (effect) {
          this.perform(run, effect);
          continue;
        }
        const event = run.queue.shift();
        if (!event) break;
        const next = step(run.phase, event, this.options.limits);
        run.phase = next.phase;
        run.todo.push(...next.effects);
      }
    } catch (err) {
      run.busy = false;
      this.failRun(run, err);
      return;
    }
    run.busy = false;
    if (run.done) return;
    if (isFinal(run.phase)) {
      this.observePhase2Done(run);
      this.finish(run);
    } else this.schedule(run);
  }

  private perform(run: Run, effect: Effect): void {
    switch (effect.type) {
      case 'persist':
        this.persist(run, effect.record, effect.awaited);
        break;
      case 'send':
        if (effect.rpc === 'prepare') this.sendPrepare(run, effect.leg);
        else this.startPhase2(run, effect.bank, effect.rpc);
        break;
      case 'reply':
        this.reply(run, effect.outcome);
        break;
    }
  }

  /**
   * Queues the record; the store may call back at once (a full batch) or after its group commit.
   * An awaited record comes back to the coordinator as a `persisted` event.
   */
  private persist(run: Run, record: LogRecord, awaited: boolean): void {
    const nowMs = this.clock.nowMs();
    if (record.type === 'decision') run.decidingAtMs = nowMs;
    this.options.log.enqueue(record, nowMs, (err) => {
      if (err instanceof RecordRefused) this.refused(run, err);
      else if (awaited) this.persisted(run, record, err);
      // An ack or completion: phase 2 goes on, and the log is brought up to date by repeating it.
      else if (err) this.options.onStranded(run.phase.tx.id, err);
    }, awaited);
  }

  /** An awaited record is on disk (or failed): the coordinator steps what waited for it. */
  private persisted(run: Run, record: LogRecord, err: Error | undefined): void {
    if (run.done) return;
    if (err) {
      // The log says nothing more about it than before this record: whoever drives it again
      // starts from there. The caller may retry with the same key and hear that outcome.
      this.finish(run, new AppError('INTERNAL', 'the transfer could not be recorded; retry with the same idempotency key'));
      this.options.onStranded(run.phase.tx.id, err);
      if (record.type === 'begin' && this.options.limits.prepareWithBegin) this.releasePrepares(run.phase.tx);
      return;
    }
    assert(record.type === 'begin' || record.type === 'decision', `${record.type} record awaited`);
    const point = PERSISTED_FAILPOINT[record.type];
    if (point) failpoint(point);
    if (record.type === 'begin') run.preparingSinceMs = this.clock.nowMs();
    if (record.type === 'decision') {
      this.audit(run, record);
      this.observeDecided(run, record);
    }
    this.deliver(run, { type: 'persisted', record: record.type, nowMs: this.clock.nowMs() });
  }

  /**
   * The prepares of `tx` left beside its begin record, and that record could not be written. It
   * can never be decided (a decision waits for it), so abort is its only outcome: presumed, as
   * decisionOf answers a bank that asks. Tell its banks now, once, instead of leaving their holds
   * until they ask (bank.inDoubtQueryAfterMs). Presumed abort needs no record; a bank that misses
   * this Abort still hears "abort" when it asks, and one whose prepare comes after it refuses that
   * prepare (the bank's empty-rollback fence).
   */
  private releasePrepares(tx: Tx): void {
    const deadlineAtMs = this.clock.nowMs() + this.options.limits.phase2CallTimeoutMs;
    for (const bank of banksOf(tx)) {
      this.batches.settle(bank, 'abort', tx.id, deadlineAtMs, this.stopping.signal).then(
        () => this.options.logger.info('aborted at the bank: the begin record could not be written', { transactionId: tx.id, bank }),
        (err: unknown) => {
          if (isAbortError(err)) return;
          this.options.logger.warn('could not abort at the bank; it aborts when it asks about the transaction', {
            transactionId: tx.id, bank, code: statusName(err), error: errorText(err),
          });
        },
      );
    }
  }

  /** One line per transfer decision (file only: the console is not written on the hot path). */
  private audit(run: Run, record: Extract<LogRecord, { type: 'decision' }>): void {
    const { tx } = run.phase;
    this.options.logger.info('transfer decided', {
      transactionId: tx.id,
      idempotencyKey: tx.idempotencyKey,
      decision: record.decision,
      ...(record.decision === 'abort' ? { reason: record.failure.reason } : {}),
      [FILE_ONLY]: true,
    });
  }

  private observeDecided(run: Run, record: Extract<LogRecord, { type: 'decision' }>): void {
    const observer = this.options.observer;
    if (!observer) return;
    run.decidedAtMs = this.clock.nowMs();
    const prepareMs = run.preparingSinceMs === undefined || run.decidingAtMs === undefined
      ? undefined
      : run.decidingAtMs - run.preparingSinceMs;
    observer.decided(record.decision, record.decision === 'abort' ? record.failure.reason : undefined, prepareMs);
  }

  private observePhase2Done(run: Run): void {
    if (run.decidedAtMs === undefined || !this.options.observer) return;
    const decision = run.phase.kind === 'committed' ? 'commit' : 'abort';
    this.options.observer.phase2Done(decision, this.clock.nowMs() - run.decidedAtMs);
  }

  private sendPrepare(run: Run, leg: Leg): void {
    const phase = run.phase;
    assert(phase.kind === 'preparing', `prepare sent while ${phase.kind}`);
    const { tx } = phase;
    const client = this.options.bankClients.get(leg.bank);
    if (!client) {
      // No healthy instance is known: abort now instead of waiting out the prepare timeout.
      this.deliver(run, {
        type: 'vote_unknown',
        leg: leg.kind,
        reason: 'BANK_UNAVAILABLE',
        message: `bank ${leg.bank} is not available; nothing was transferred`,
        sent: false,
        nowMs: this.clock.nowMs(),
      });
      return;
    }
    const account = leg.kind === 'debit' ? tx.from : tx.to;
    const counterparty = leg.kind === 'debit' ? tx.to : tx.from;
    const request = {
      transactionId: tx.id,
      kind: leg.kind === 'debit' ? LegKind.LEG_KIND_DEBIT : LegKind.LEG_KIND_CREDIT,
      username: account.username,
      amountMinor: tx.amountMinor,
      currency: tx.currency,
      counterpartyBank: counterparty.bank,
      counterpartyUsername: counterparty.username,
    };
    // One attempt (in the bank's next PrepareBatch) bounded by the prepare deadline; the
    // coordinator's tick aborts at the deadline anyway. Retrying is left to the caller (same key).
    const call = this.batches.prepare(leg.bank, request, phase.deadlineAtMs, run.abort.signal);
    failpoint('gateway.after_prepare_sent', leg.kind);
    call.then(
      (response) => {
        failpoint('gateway.after_vote_received', leg.kind);
        this.deliver(run, this.voteEvent(leg, response));
      },
      (err: unknown) => {
        if (run.done || isAbortError(err)) return;
        const timedOut = statusOf(err) === Status.DEADLINE_EXCEEDED;
        this.options.logger.warn('prepare failed', {
          transactionId: tx.id,
          bank: leg.bank,
          leg: leg.kind,
          code: statusName(err),
          error: errorText(err),
        });
        this.deliver(run, {
          type: 'vote_unknown',
          leg: leg.kind,
          reason: timedOut ? 'PREPARE_TIMEOUT' : 'BANK_UNAVAILABLE',
          message: timedOut
            ? `bank ${leg.bank} did not answer in time; nothing was transferred`
            : `bank ${leg.bank} is not available; nothing was transferred`,
          sent: true,
          nowMs: this.clock.nowMs(),
        });
      },
    );
  }

  private voteEvent(leg: Leg, response: PrepareVote): Event {
    const nowMs = this.clock.nowMs();
    if (response.vote === Vote.VOTE_YES) return { type: 'vote', leg: leg.kind, vote: 'yes', nowMs };
    if (response.vote === Vote.VOTE_NO) return { type: 'vote', leg: leg.kind, vote: 'no', failure: noFailure(leg.bank, response), nowMs };
    this.options.logger.error('prepare answered without a vote', { bank: leg.bank, vote: response.vote });
    return {
      type: 'vote_unknown',
      leg: leg.kind,
      reason: 'BANK_UNAVAILABLE',
      message: `bank ${leg.bank} gave no valid answer; nothing was transferred`,
      sent: true,
      nowMs,
    };
  }

  private startPhase2(run: Run, bank: BankId, rpc: 'commit' | 'abort'): void {
    this.phase2Loop(run, bank, rpc).catch((err: unknown) => {
      if (isAbortError(err)) return;
      // deliver() rethrows only assertion failures (bugs): let them crash the process.
      throw err;
    });
  }

  /** Commit/Abort until acknowledged: a decision never changes, only its delivery is retried. */
  private async phase2Loop(run: Run, bank: BankId, rpc: 'commit' | 'abort'): Promise<void> {
    const { commitRetryIntervalMs, commitRetryMaxIntervalMs } = this.options.limits;
    for (let attempt = 1; !run.done; attempt++) {
      if (await this.phase2Attempt(run, bank, rpc, attempt)) {
        if (failpointsArmed()) this.ackFailpoint(run, bank, rpc);
        this.deliver(run, { type: 'ack', bank, rpc });
        return;
      }
      // Jitter spreads the retries of many transfers waiting on the same bank.
      await sleep(this.clock, backoffMs(attempt, commitRetryIntervalMs, commitRetryMaxIntervalMs, this.options.random), run.abort.signal);
    }
  }

  /** Crash points when a phase-2 acknowledgement arrives, before the coordinator records it. */
  private ackFailpoint(run: Run, bank: BankId, rpc: 'commit' | 'abort'): void {
    const phase = run.phase;
    if (phase.kind !== 'committing' && phase.kind !== 'aborting') return;
    if (!phase.awaiting.has(bank)) return;
    if (phase.awaiting.size === 1) failpoint('gateway.after_last_ack');
    else if (rpc === 'commit') failpoint('gateway.between_commits');
  }

  private async phase2Attempt(run: Run, bank: BankId, rpc: 'commit' | 'abort', attempt: number): Promise<boolean> {
    const txId = run.phase.tx.id;
    const log = (level: 'warn' | 'error' | 'debug', message: string, extra: Record<string, unknown>) => {
      const lvl = level === 'warn' && attempt !== 1 && attempt % PHASE2_WARN_EVERY_ATTEMPTS !== 0 ? 'debug' : level;
      this.options.logger.log(lvl, message, { transactionId: txId, bank, rpc, attempt, ...extra });
    };
    if (!this.options.bankClients.get(bank)) {
      log('warn', 'phase 2: bank not available, will retry', {});
      return false;
    }
    const deadlineAtMs = this.clock.nowMs() + this.options.limits.phase2CallTimeoutMs;
    try {
      const state = await this.batches.settle(bank, rpc, txId, deadlineAtMs, run.abort.signal);
      const contrary = rpc === 'commit' ? TransactionState.TRANSACTION_STATE_ABORTED : TransactionState.TRANSACTION_STATE_COMMITTED;
      if (state === contrary) {
        // The bank broke the protocol (it resolved the transaction against the decision). Keep
        // asking and make noise: operators see the row among the unfinished transfers.
        log('error', 'phase 2: bank reports the opposite outcome', { state: TransactionState[state] });
        return false;
      }
      return true;
    } catch (err) {
      if (isAbortError(err)) throw err;
      // Stopped meanwhile (the channel closing fails the call): nothing to retry or report.
      if (run.done) throw new AbortError();
      log('warn', 'phase 2 call failed, will retry', { code: statusName(err), error: errorText(err) });
      return false;
    }
  }

  private reply(run: Run, outcome: Outcome): void {
    const handlers = run.reply;
    run.reply = undefined;
    handlers?.onReply(outcome);
  }

  /** Arms the run's single timer for the coordinator's next deadline (prepare or reply). */
  private schedule(run: Run): void {
    run.timer?.cancel();
    run.timer = undefined;
    const atMs = nextDeadlineMs(run.phase);
    if (atMs === undefined) return;
    run.timer = this.clock.setTimer(Math.max(0, atMs - this.clock.nowMs()), () => {
      run.timer = undefined;
      this.deliver(run, { type: 'tick', nowMs: this.clock.nowMs() });
    });
  }

  private finish(run: Run, unanswered?: Error): void {
    run.done = true;
    run.timer?.cancel();
    run.timer = undefined;
    run.abort.abort(RUN_FINISHED);
    if (run.reply) {
      const handlers = run.reply;
      run.reply = undefined;
      handlers.onError(unanswered ?? new AppError('INTERNAL', 'the transfer ended without an answer'));
    }
    this.runs.delete(run.phase.tx.id);
    if (this.runs.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /**
   * The shared log refused a record (several gateways): the key belongs to another transfer, or
   * another gateway took this one over. Either way this run stops; nothing of the record was
   * written. The caller hears the refusal itself for a taken key (the engine then waits for the
   * other transfer), and TRANSFER_IN_PROGRESS when fenced (the new owner finishes it).
   */
  private refused(run: Run, refusal: RecordRefused): void {
    if (run.done) return;
    if (refusal.kind === 'key_taken') {
      // Only a shared log refuses a begin record, and with one the prepares wait for it.
      assert(!this.options.limits.prepareWithBegin, `transaction ${run.phase.tx.id}: begin refused after its prepares left`);
      this.finish(run, refusal);
      return;
    }
    // A refused ack or completion comes after this gateway's own durable decision: that is final.
    const outcome = durableOutcome(run.phase);
    if (outcome) this.reply(run, outcome);
    this.options.logger.warn('transfer taken over by another gateway; this one stops driving it', {
      transactionId: run.phase.tx.id, phase: run.phase.kind, why: refusal.message,
    });
    this.finish(run, new AppError('TRANSFER_IN_PROGRESS', 'another gateway is finishing this transfer; retry with the same idempotency key'));
  }

  /**
   * A step or an effect threw (a record the log could not write is not this: see onStranded). The
   * run stops here; the store still holds its last durable state, which recovery resumes at the
   * next start. Bugs then crash.
   */
  private failRun(run: Run, err: unknown): void {
    this.options.logger.error('transfer driver failed', {
      transactionId: run.phase.tx.id,
      phase: run.phase.kind,
      error: err instanceof Error ? err.stack : String(err),
    });
    this.finish(run, new AppError('INTERNAL', 'the transfer could not be completed; retry with the same idempotency key'));
    if (err instanceof Error && err.name === 'AssertionError') throw err;
  }
}

/** The bank's NO reason as one of ours; an unknown reason still aborts, with its text kept. */
function noFailure(bank: string, response: { reason: string; message: string }): Failure {
  const known = isReason(response.reason);
  return {
    reason: known ? (response.reason as Failure['reason']) : 'TRANSACTION_ABORTED',
    message: response.message || `bank ${bank} refused the transfer (${response.reason || 'no reason given'})`,
  };
}

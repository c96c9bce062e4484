import type { Failure } from '../core/errors.js';
import type { AccountRef, LegKind } from '../core/transfer.js';

// Vocabulary of the 2PC coordinator. Pure data: no I/O, no clocks, no timers (STYLE §1).

export type BankId = string;

export type { LegKind };

export interface Leg {
  readonly kind: LegKind;
  readonly bank: BankId;
}

export interface Tx {
  /** The 2PC transaction id, sent to the banks. */
  readonly id: string;
  /** The caller's idempotency key, scoped to `from` (the owner). */
  readonly idempotencyKey: string;
  /** Paying account; also the owner of the transfer (the authenticated caller). */
  readonly from: AccountRef;
  readonly to: AccountRef;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly createdAtMs: number;
}

/** What the coordinator knows about one leg's prepare. */
export type LegVote =
  | { readonly vote: 'yes' }
  | { readonly vote: 'no'; readonly failure: Failure }
  /** The prepare failed without an answer. `sent` is false when it never left (no bank address). */
  | { readonly vote: 'unknown'; readonly failure: Failure; readonly sent: boolean };

export type Decision = 'commit' | 'abort';

export type Outcome = { readonly kind: 'committed' } | { readonly kind: 'aborted'; readonly failure: Failure };

export type Phase =
  | {
      readonly kind: 'preparing';
      readonly tx: Tx;
      /**
       * The begin record is durable (before: only `persisted` lets it decide). The prepares leave
       * then, or with the record (Limits.prepareWithBegin).
       */
      readonly begun: boolean;
      readonly votes: ReadonlyMap<LegKind, LegVote>;
      readonly deadlineAtMs: number;
    }
  | {
      readonly kind: 'committing';
      readonly tx: Tx;
      /** The decision is durable and the Commits have left; before, nobody may be told COMMITTED. */
      readonly durable: boolean;
      /** Banks whose Commit is not acknowledged yet. */
      readonly awaiting: ReadonlySet<BankId>;
      /**
       * Answer COMMITTED as soon as the decision is durable (replyAckWaitMs 0, the default: the
       * banks' reads wait for the legs prepared before them, src/bank/settled-reads.ts).
       */
      readonly replyWhenDurable: boolean;
      /** Else when to answer COMMITTED even if some bank has not acknowledged (the decision is final). */
      readonly replyAtMs: number;
      readonly replied: boolean;
    }
  | {
      readonly kind: 'aborting';
      readonly tx: Tx;
      readonly failure: Failure;
      /** The decision is durable and the Aborts have left. */
      readonly durable: boolean;
      /** The caller was answered, or nobody waits (a recovered transfer). */
      readonly replied: boolean;
      /** Votes known so far (empty after recovery): a late NO or unsent leg holds nothing. */
      readonly votes: ReadonlyMap<LegKind, LegVote>;
      /** Banks whose Abort is not acknowledged yet and that may hold something. */
      readonly awaiting: ReadonlySet<BankId>;
    }
  | { readonly kind: 'committed'; readonly tx: Tx }
  | { readonly kind: 'aborted'; readonly tx: Tx; readonly failure: Failure };

export type PhaseKind = Phase['kind'];

/** Why a prepare got no vote: the bank could not be reached / failed, or the deadline passed. */
export type UnknownVoteReason = 'BANK_UNAVAILABLE' | 'PREPARE_TIMEOUT';

export type Event =
  | { readonly type: 'begin'; readonly tx: Tx; readonly nowMs: number }
  | { readonly type: 'vote'; readonly leg: LegKind; readonly vote: 'yes'; readonly nowMs: number }
  | { readonly type: 'vote'; readonly leg: LegKind; readonly vote: 'no'; readonly failure: Failure; readonly nowMs: number }
  | {
      readonly type: 'vote_unknown';
      readonly leg: LegKind;
      readonly reason: UnknownVoteReason;
      readonly message: string;
      /** False when the prepare never left the gateway (so the bank holds nothing for it). */
      readonly sent: boolean;
      readonly nowMs: number;
    }
  | { readonly type: 'ack'; readonly bank: BankId; readonly rpc: 'commit' | 'abort' }
  | { readonly type: 'tick'; readonly nowMs: number }
  /**
   * A record persisted with `awaited: true` is durable (raft's async storage writes: the write's
   * completion comes back as a message). What had to wait for it (sends, the reply) follows now.
   */
  | {
      readonly type: 'persisted';
      readonly record: AwaitedRecordType;
      /** When it became durable: the decision's time when votes waited for the begin record. */
      readonly nowMs?: number;
    };

/** Durable records, written in the order of the persist effects (group commits keep that order). */
export type LogRecord =
  | { readonly type: 'begin'; readonly tx: Tx }
  | {
      readonly type: 'decision';
      readonly txId: string;
      readonly decision: 'commit';
      readonly awaiting: readonly BankId[];
    }
  | {
      readonly type: 'decision';
      readonly txId: string;
      readonly decision: 'abort';
      readonly failure: Failure;
      readonly awaiting: readonly BankId[];
    }
  /** The bank needs no further phase-2 call: it acknowledged, or is known to hold nothing. */
  | { readonly type: 'ack'; readonly txId: string; readonly bank: BankId }
  | { readonly type: 'completed'; readonly txId: string; readonly outcome: Outcome };

/** The records the coordinator waits for: nothing is sent after them until they are durable. */
export type AwaitedRecordType = Extract<LogRecord['type'], 'begin' | 'decision'>;

export type Effect =
  /**
   * Queue the record for the log's next group commit. `awaited`: the coordinator waits for it, so
   * the log writes it at once (urgent) and the driver steps `persisted` when it is durable. Not
   * awaited: nobody waits; it rides along with the next group commit (losing it in a crash only
   * makes recovery repeat an idempotent Commit/Abort).
   */
  | { readonly type: 'persist'; readonly record: LogRecord; readonly awaited: boolean }
  | { readonly type: 'send'; readonly rpc: 'prepare'; readonly leg: Leg }
  | { readonly type: 'send'; readonly rpc: 'commit' | 'abort'; readonly bank: BankId }
  | { readonly type: 'reply'; readonly outcome: Outcome };

export interface Limits {
  readonly prepareTimeoutMs: number;
  /**
   * The prepares leave in the same step as the begin record instead of once it is durable, so that
   * the banks' fsync runs while the gateway's does. The decision still waits for the begin record.
   * Only for a log no other gateway answers from (TransferEngine decides): a bank asking about a
   * transaction the log does not know is then told "abort" only when no run here drives it.
   * Default false.
   */
  readonly prepareWithBegin?: boolean;
  /**
   * How long after a durable commit decision the caller waits for acknowledgements before the
   * reply; 0 = answered at once.
   */
  readonly replyAckWaitMs: number;
}

export interface StepResult {
  readonly phase: Phase;
  readonly effects: readonly Effect[];
}

/** Durable state of one transfer as the store keeps it (one row), the input of recovery. */
export type DurableState = 'preparing' | 'committing' | 'aborting' | 'committed' | 'aborted';

export interface DurableTx {
  readonly tx: Tx;
  readonly state: DurableState;
  /** Set when the decision is abort. */
  readonly failure?: Failure;
  /** Banks whose phase-2 call is not acknowledged (empty before the decision and when final). */
  readonly awaiting: readonly BankId[];
}

export function legsOf(tx: Tx): readonly Leg[] {
  return [
    { kind: 'debit', bank: tx.from.bank },
    { kind: 'credit', bank: tx.to.bank },
  ];
}

/** Distinct banks of a transfer, in leg order: a same-bank transfer has one. */
export function banksOf(tx: Tx): readonly BankId[] {
  return [...new Set(legsOf(tx).map((l) => l.bank))];
}

export function isFinal(phase: Phase): boolean {
  return phase.kind === 'committed' || phase.kind === 'aborted';
}

import type { Clock } from '../core/clock.js';
import { GroupCommit, type GroupCommitObserver } from '../core/group-commit.js';
import type { Ledger, LedgerOp, LedgerOpResult } from './ledger.js';

// Group commit for the bank's 2PC operations (the shared mechanism in core/group-commit.ts).
// Prepares, commits and aborts that arrive close together (single RPCs and batch RPCs alike) are
// performed in ONE SQLite transaction (Ledger.execute: one BEGIN IMMEDIATE ... COMMIT, one fsync).
// Each operation is still decided on its own, and every caller gets its answer only after the
// shared transaction is on disk (durable before reply). If the shared transaction throws (an
// assertion about one operation), each operation is run alone, so only the faulty one fails.

export interface GroupCommitLimits {
  /** Operations performed in one transaction at most. */
  readonly groupCommitOpsMax: number;
  /** How long the first operation waits for others; 0 = until the end of the event-loop turn. */
  readonly groupCommitWindowMs: number;
}

/** Told of each shared transaction (its size and time) and of the operations it performed. */
export interface LedgerObserver extends GroupCommitObserver {
  /** The operations of one transaction that is now on disk. */
  performed(ops: readonly LedgerOp[]): void;
}

export class LedgerGroupCommit {
  private readonly group: GroupCommit<LedgerOp, LedgerOpResult>;

  /** `observer`: the bank's metrics. */
  constructor(ledger: Ledger, limits: GroupCommitLimits, clock: Clock, observer?: LedgerObserver) {
    const execute = (ops: readonly LedgerOp[]) => {
      const results = ledger.execute(ops);
      observer?.performed(ops);
      return results;
    };
    this.group = new GroupCommit(execute, {
      maxItems: limits.groupCommitOpsMax,
      windowMs: limits.groupCommitWindowMs,
      // Every bank operation has a caller waiting for it: none is ever a background item.
      backgroundDelayMs: limits.groupCommitWindowMs,
    }, clock, observer);
  }

  /** Performs `op` in the next group commit; resolves once that is durable. */
  submit(op: LedgerOp): Promise<LedgerOpResult> {
    return this.group.submitted(op);
  }

  /** Performs every operation in the next group commit(s), in order; one result per operation. */
  submitAll(ops: readonly LedgerOp[]): Promise<LedgerOpResult[]> {
    return Promise.all(ops.map((op) => this.submit(op)));
  }

  /** Runs `listener` after each group commit is durable, once its callers have their answers. */
  onFlushed(listener: () => void): void {
    this.group.onFlushed(listener);
  }

  /** Performs what is queued now (also before the ledger closes). */
  flush(): Promise<void> {
    return this.group.flush();
  }
}

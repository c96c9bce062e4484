import { assert } from '../core/assert.js';
import type { Clock, Timer } from '../core/clock.js';
import type { Ledger, LedgerOp, LedgerOpResult } from './ledger.js';

// Group commit for the bank's 2PC operations. Prepares, commits and aborts that arrive in the same
// event-loop turn (single RPCs and batch RPCs alike) are queued and performed in ONE SQLite
// transaction (Ledger.execute: one BEGIN IMMEDIATE ... COMMIT, one fsync) at the end of the turn,
// or at once when groupCommitOpsMax are queued. Each operation is still decided on its own, and
// every caller gets its answer only after the shared transaction is on disk (durable before reply).
// If the shared transaction throws (an assertion about one operation), each operation is run
// alone in its own transaction, so only the faulty one fails.

export interface GroupCommitLimits {
  /** Operations performed in one transaction at most. */
  readonly groupCommitOpsMax: number;
}

interface Pending {
  readonly op: LedgerOp;
  resolve(result: LedgerOpResult): void;
  reject(err: unknown): void;
}

export class LedgerGroupCommit {
  private queue: Pending[] = [];
  private scheduled: Timer | undefined;

  constructor(
    private readonly ledger: Ledger,
    private readonly limits: GroupCommitLimits,
    private readonly clock: Clock,
  ) {
    assert(limits.groupCommitOpsMax > 0, 'group commit: groupCommitOpsMax must be positive');
  }

  /** Performs `op` in the next group commit; resolves once that is durable. */
  submit(op: LedgerOp): Promise<LedgerOpResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      if (this.queue.length >= this.limits.groupCommitOpsMax) this.flush();
      else this.scheduled ??= this.clock.setTimer(0, () => this.flush());
    });
  }

  /** Performs every operation in the next group commit(s), in order; one result per operation. */
  submitAll(ops: readonly LedgerOp[]): Promise<LedgerOpResult[]> {
    return Promise.all(ops.map((op) => this.submit(op)));
  }

  /** Performs what is queued now (also before the ledger closes). */
  flush(): void {
    this.scheduled?.cancel();
    this.scheduled = undefined;
    const pending = this.queue;
    this.queue = [];
    for (let start = 0; start < pending.length; start += this.limits.groupCommitOpsMax) {
      const group = pending.slice(start, start + this.limits.groupCommitOpsMax);
      let results: LedgerOpResult[] | undefined;
      try {
        results = this.ledger.execute(group.map((p) => p.op));
      } catch {
        // Nothing of the group was written: run each alone so that only the faulty one fails.
        for (const p of group) {
          try {
            p.resolve(this.ledger.execute([p.op])[0] as LedgerOpResult);
          } catch (err) {
            p.reject(err);
          }
        }
        continue;
      }
      group.forEach((p, i) => p.resolve(results[i] as LedgerOpResult));
    }
  }
}

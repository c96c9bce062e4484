import { assert } from '../core/assert.js';
import type { Clock, Timer } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import type { Ledger } from './ledger.js';

// Reads that see every transfer answered before them. The gateway answers COMMITTED once its
// decision is durable, before the banks have applied it (phase 2 is then one round trip behind).
// So a balance or history read first waits for the account's legs that were prepared BEFORE the
// read arrived to be committed or aborted here, as CockroachDB's reads wait on the write intents
// they meet. Legs prepared later are not waited for: a busy account never starves its reads. The
// wait is bounded (readSettleWaitMaxMs); past it the read answers what the ledger holds then (a
// transfer whose coordinator is gone stays a hold, shown in `available`). The set of waiting
// reads is bounded too (readSettleWaitersMax); beyond it a read that would wait is BANK_BUSY.
// Waiters are rechecked after each group commit of the ledger; a leg the in-doubt resolver settles
// (termination.ts, outside the group commit) releases its readers at their bound at the latest.

export interface SettledReadsLimits {
  /** How long a read waits for the legs prepared before it; 0 = never waits. */
  readonly readSettleWaitMaxMs: number;
  /** Reads waiting at once at most. */
  readonly readSettleWaitersMax: number;
}

interface Waiter {
  readonly pending: Set<string>;
  readonly resolve: () => void;
  timer: Timer | undefined;
}

export class SettledReads {
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly ledger: Ledger,
    private readonly limits: SettledReadsLimits,
    private readonly clock: Clock,
  ) {
    assert(limits.readSettleWaitMaxMs >= 0 && limits.readSettleWaitersMax >= 0, 'settled reads: bounds must be >= 0');
  }

  /** Resolves once every leg of `username` prepared before this call is settled here, or after the bound. */
  settled(username: string): Promise<void> {
    if (this.limits.readSettleWaitMaxMs === 0) return Promise.resolve();
    const pending = this.ledger.preparedTxIdsOf(username);
    if (pending.length === 0) return Promise.resolve();
    if (this.waiters.size >= this.limits.readSettleWaitersMax) {
      return Promise.reject(new AppError('BANK_BUSY', 'the bank has too many reads waiting for transfers to settle; try again shortly'));
    }
    return new Promise((resolve) => {
      const waiter: Waiter = { pending: new Set(pending), resolve, timer: undefined };
      waiter.timer = this.clock.setTimer(this.limits.readSettleWaitMaxMs, () => this.release(waiter));
      this.waiters.add(waiter);
    });
  }

  /** After each durable change of the ledger's 2PC state: releases the reads it settled. */
  recheck(): void {
    for (const waiter of this.waiters) {
      for (const txId of waiter.pending) if (this.ledger.txState(txId) !== 'prepared') waiter.pending.delete(txId);
      if (waiter.pending.size === 0) this.release(waiter);
    }
  }

  private release(waiter: Waiter): void {
    if (!this.waiters.delete(waiter)) return;
    waiter.timer?.cancel();
    waiter.resolve();
  }
}

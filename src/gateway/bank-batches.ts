import { AbortError } from 'abort-controller-x';
import { ClientError, Status } from 'nice-grpc';
import { assert } from '../core/assert.js';
import type { Clock, Timer } from '../core/clock.js';
import {
  BankServiceDefinition,
  type PrepareBatchRequest,
  type PrepareBatchResponse,
  type PrepareLeg,
  type PrepareVote,
  type AbortBatchRequest,
  type AbortBatchResponse,
  type CommitBatchRequest,
  type CommitBatchResponse,
  type TransactionState,
} from '../gen/bank/v1/bank.js';

// Coalesces the driver's 2PC calls per bank, TigerBeetle-style: prepares, commits and aborts for
// the same bank queued within one event-loop turn (or bankBatchWindowMs) leave as one
// PrepareBatch / CommitBatch / AbortBatch call, at most bankBatchMaxItems items each; a full
// batch leaves at once. Every item gets its own answer (the bank decides each on its own) or, if
// the whole call fails, the call's error. The batch call's deadline is the latest of its items'
// deadlines: a prepare item still has its own deadline, enforced by the coordinator's tick.
// Items whose transfer was cancelled before the batch left are dropped (AbortError).

export interface BankBatchLimits {
  /** Items in one batch call at most. */
  readonly bankBatchMaxItems: number;
  /** How long a queued item waits for others; 0 = until the end of this event-loop turn. */
  readonly bankBatchWindowMs: number;
}

/** Per-call options: the deadline in ms from now. */
export interface BatchCallOptions {
  readonly deadline: number;
}

/**
 * The 2PC calls of one bank, as the driver makes them. The gRPC client implements it; so does the
 * simulator's network (test/simulation), with the same generated message types and no gRPC.
 */
export interface BankBatchClient {
  prepareBatch(request: PrepareBatchRequest, options: BatchCallOptions): Promise<PrepareBatchResponse>;
  commitBatch(request: CommitBatchRequest, options: BatchCallOptions): Promise<CommitBatchResponse>;
  abortBatch(request: AbortBatchRequest, options: BatchCallOptions): Promise<AbortBatchResponse>;
}

/** Where the batches go: the lean client (no logging/retry middleware) when there is one. */
export interface BatchClientSource {
  get(bank: string): BankBatchClient | undefined;
  lean?(bank: string): BankBatchClient | undefined;
}

interface Item<T> {
  readonly signal: AbortSignal;
  /** Absolute time (ms) after which this item's answer is of no use. */
  readonly deadlineAtMs: number;
  resolve(value: T): void;
  reject(err: unknown): void;
}

interface PrepareItem extends Item<PrepareVote> {
  readonly leg: PrepareLeg;
}

interface TxItem extends Item<TransactionState> {
  readonly txId: string;
}

interface BankQueue {
  prepares: PrepareItem[];
  commits: TxItem[];
  aborts: TxItem[];
  scheduled: Timer | undefined;
}

const PATHS = {
  prepare: `/${BankServiceDefinition.fullName}/PrepareBatch`,
  commit: `/${BankServiceDefinition.fullName}/CommitBatch`,
  abort: `/${BankServiceDefinition.fullName}/AbortBatch`,
} as const;

export class BankBatches {
  private readonly queues = new Map<string, BankQueue>();

  constructor(
    private readonly source: BatchClientSource,
    private readonly limits: BankBatchLimits,
    private readonly clock: Clock,
  ) {
    assert(limits.bankBatchMaxItems > 0 && limits.bankBatchWindowMs >= 0,
      'bank batches: need bankBatchMaxItems > 0 and bankBatchWindowMs >= 0');
  }

  /** Queues one leg's prepare for `bank`; resolves with the bank's vote on it. */
  prepare(bank: string, leg: PrepareLeg, deadlineAtMs: number, signal: AbortSignal): Promise<PrepareVote> {
    return new Promise((resolve, reject) => {
      const q = this.queue(bank);
      q.prepares.push({ leg, deadlineAtMs, signal, resolve, reject });
      if (q.prepares.length >= this.limits.bankBatchMaxItems) this.sendPrepares(bank, q);
      else this.schedule(bank, q);
    });
  }

  /** Queues a Commit (or Abort) of `txId` at `bank`; resolves with the bank's state of it. */
  settle(bank: string, rpc: 'commit' | 'abort', txId: string, deadlineAtMs: number, signal: AbortSignal): Promise<TransactionState> {
    return new Promise((resolve, reject) => {
      const q = this.queue(bank);
      const list = rpc === 'commit' ? q.commits : q.aborts;
      list.push({ txId, deadlineAtMs, signal, resolve, reject });
      if (list.length >= this.limits.bankBatchMaxItems) this.sendSettles(bank, q, rpc);
      else this.schedule(bank, q);
    });
  }

  /** Sends every queued item now (one batch per bank and kind, as when the turn ends). */
  sendAll(): void {
    for (const [bank, q] of this.queues) {
      if (q.prepares.length === 0 && q.commits.length === 0 && q.aborts.length === 0) continue;
      this.cancel(q);
      this.sendPrepares(bank, q);
      this.sendSettles(bank, q, 'commit');
      this.sendSettles(bank, q, 'abort');
    }
  }

  private cancel(q: BankQueue): void {
    q.scheduled?.cancel();
    q.scheduled = undefined;
  }

  private queue(bank: string): BankQueue {
    let q = this.queues.get(bank);
    if (!q) {
      q = { prepares: [], commits: [], aborts: [], scheduled: undefined };
      this.queues.set(bank, q);
    }
    return q;
  }

  private schedule(bank: string, q: BankQueue): void {
    if (q.scheduled !== undefined) return;
    const flush = () => {
      q.scheduled = undefined;
      this.sendPrepares(bank, q);
      this.sendSettles(bank, q, 'commit');
      this.sendSettles(bank, q, 'abort');
    };
    q.scheduled = this.clock.setTimer(this.limits.bankBatchWindowMs, flush);
  }

  private client(bank: string): BankBatchClient | undefined {
    return this.source.lean ? this.source.lean(bank) : this.source.get(bank);
  }

  private sendPrepares(bank: string, q: BankQueue): void {
    const items = live(q.prepares.splice(0, this.limits.bankBatchMaxItems));
    if (q.prepares.length > 0) this.schedule(bank, q);
    if (items.length === 0) return;
    const client = this.client(bank);
    if (!client) return failAll(items, unavailable(PATHS.prepare, bank));
    const call = client.prepareBatch({ legs: items.map((i) => i.leg) }, { deadline: this.deadlineOf(items) });
    call.then(
      (res) => {
        if (res.votes.length !== items.length) {
          return failAll(items, new ClientError(PATHS.prepare, Status.INTERNAL, `bank ${bank} answered ${res.votes.length} votes for ${items.length} legs`));
        }
        items.forEach((item, i) => item.resolve(res.votes[i] as PrepareVote));
      },
      (err: unknown) => failAll(items, err),
    );
  }

  private sendSettles(bank: string, q: BankQueue, rpc: 'commit' | 'abort'): void {
    const list = rpc === 'commit' ? q.commits : q.aborts;
    const items = live(list.splice(0, this.limits.bankBatchMaxItems));
    if (list.length > 0) this.schedule(bank, q);
    if (items.length === 0) return;
    const client = this.client(bank);
    if (!client) return failAll(items, unavailable(PATHS[rpc], bank));
    const request = { transactionIds: items.map((i) => i.txId) };
    const options = { deadline: this.deadlineOf(items) };
    const call = rpc === 'commit' ? client.commitBatch(request, options) : client.abortBatch(request, options);
    call.then(
      (res) => {
        if (res.states.length !== items.length) {
          return failAll(items, new ClientError(PATHS[rpc], Status.INTERNAL, `bank ${bank} answered ${res.states.length} states for ${items.length} transactions`));
        }
        items.forEach((item, i) => item.resolve(res.states[i] as TransactionState));
      },
      (err: unknown) => failAll(items, err),
    );
  }

  /** The batch call's deadline in ms from now: the latest of its items' (at least 1 ms). */
  private deadlineOf(items: readonly Item<unknown>[]): number {
    let latest = 0;
    for (const i of items) latest = Math.max(latest, i.deadlineAtMs);
    return Math.max(1, latest - this.clock.nowMs());
  }
}

/** Drops (rejects with AbortError) the items whose transfer was cancelled meanwhile. */
function live<T extends Item<unknown>>(items: T[]): T[] {
  const out: T[] = [];
  for (const i of items) {
    if (i.signal.aborted) i.reject(new AbortError());
    else out.push(i);
  }
  return out;
}

function failAll(items: readonly Item<unknown>[], err: unknown): void {
  for (const i of items) i.reject(err);
}

function unavailable(path: string, bank: string): ClientError {
  return new ClientError(path, Status.UNAVAILABLE, `bank ${bank} is not available`);
}

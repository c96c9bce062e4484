import { assert } from './assert.js';
import type { Clock, Timer } from './clock.js';

// Group commit, the one implementation (the gateway's transfer log on either backend, the bank's
// ledger): items submitted close together are written in ONE durable write (one transaction, one
// fsync or one database round trip), then each item's waiter hears its own result.
//
// - An urgent item (someone waits for it) waits at most `windowMs` for company; 0 = until the end
//   of the current event-loop turn. A queue of `maxItems` is written at once.
// - A background item (nobody waits) rides along with the next urgent one, or is written
//   `backgroundDelayMs` later: it does not cost a write of its own.
// - Writes happen one at a time and in submission order. With an asynchronous writer (PostgreSQL)
//   what arrives during a write is the next batch, written as soon as the previous one returns.
//   A synchronous writer (SQLite) is called synchronously, so flush() has then finished its work
//   before it returns (the simulator and shutdown rely on that).
// - Should a shared write fail, each of its items is written alone, so that one bad item fails
//   only its own waiter.

/** Bounds of one group commit (from config, once). */
export interface GroupCommitBounds {
  /** Items in one write at most; a full queue is written at once. */
  readonly maxItems: number;
  /** How long the first urgent item waits for company; 0 = until the end of this event-loop turn. */
  readonly windowMs: number;
  /** How long a background item may wait for an urgent one to take it along. */
  readonly backgroundDelayMs: number;
}

/**
 * Writes items durably in one transaction, in order, and returns one result per item; throws (or
 * rejects) when nothing of it was written. Synchronous or asynchronous.
 */
export type BatchWriter<T, R> = (items: readonly T[]) => readonly R[] | Promise<readonly R[]>;

/**
 * Told of each shared write (the node's metrics): its number of items when it starts; the function
 * it returns when that write is durable (`ok`) or failed. Time is the observer's business: this
 * mechanism reads no clock for it.
 */
export interface GroupCommitObserver {
  writeStarted(items: number): (ok: boolean) => void;
}

/** Told an item's result once its write is durable, or the error when it could not be written. */
export type Done<R> = (err: Error | undefined, result?: R) => void;

interface Queued<T, R> {
  readonly item: T;
  readonly done: Done<R> | undefined;
}

export class GroupCommit<T, R> {
  private queue: Queued<T, R>[] = [];
  private urgentQueued = false;
  private windowTimer: Timer | undefined;
  private backgroundTimer: Timer | undefined;
  /** An asynchronous write in progress (nothing else is written meanwhile). */
  private writing: Promise<void> | undefined;
  private readonly flushedListeners: (() => void)[] = [];
  private discarded = false;

  constructor(
    private readonly write: BatchWriter<T, R>,
    private readonly bounds: GroupCommitBounds,
    private readonly clock: Clock,
    private readonly observer?: GroupCommitObserver,
  ) {
    assert(Number.isInteger(bounds.maxItems) && bounds.maxItems > 0, 'group commit: maxItems must be a positive integer');
    assert(bounds.windowMs >= 0 && bounds.backgroundDelayMs >= 0, 'group commit: windowMs and backgroundDelayMs must be >= 0');
  }

  /** Items queued and not yet being written. */
  get queued(): number {
    return this.queue.length;
  }

  /** Queues `item` for the next write; `done` hears its result once that write is durable. */
  submit(item: T, done?: Done<R>, urgent = true): void {
    assert(!this.discarded, 'group commit: submit after discard');
    this.queue.push({ item, done });
    if (this.queue.length >= this.bounds.maxItems) {
      this.kick();
      return;
    }
    if (urgent) {
      this.urgentQueued = true;
      this.windowTimer ??= this.clock.setTimer(this.bounds.windowMs, () => {
        this.windowTimer = undefined;
        this.kick();
      });
      return;
    }
    this.armBackground();
  }

  private armBackground(): void {
    this.backgroundTimer ??= this.clock.setTimer(this.bounds.backgroundDelayMs, () => {
      this.backgroundTimer = undefined;
      this.kick();
    });
  }

  /** The promise form of submit (urgent). */
  submitted(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.submit(item, (err, result) => (err ? reject(err) : resolve(result as R)));
    });
  }

  /** Runs `listener` after each write, once every waiter of it has run. */
  onFlushed(listener: () => void): void {
    this.flushedListeners.push(listener);
  }

  /**
   * Writes everything queued so far (after the write in progress, if any). With a synchronous
   * writer the work is done when this returns.
   */
  flush(): Promise<void> {
    this.cancelTimers();
    const pending = this.drain();
    const previous = this.writing;
    const run = previous ? previous.then(() => this.writeAll(pending)) : this.writeAll(pending);
    return run instanceof Promise ? this.track(run) : Promise.resolve();
  }

  /** Drops what is queued and not yet written, as a crash would (for the simulator and tests). */
  discard(): void {
    this.discarded = true;
    this.cancelTimers();
    this.queue = [];
  }

  /** A window or background timer fired, or the queue is full: write now unless a write runs. */
  private kick(): void {
    if (this.writing) return; // picked up when the running write returns
    this.cancelTimers();
    const run = this.writeAll(this.drain());
    // Nobody waits on a kicked write: a write failure reaches each item's waiter; a waiter's own throw (a bug) crashes.
    if (run instanceof Promise) void this.track(run);
  }

  private track(run: Promise<void>): Promise<void> {
    const tracked = run.finally(() => {
      if (this.writing !== tracked) return;
      this.writing = undefined;
      if (this.discarded || this.queue.length === 0) return;
      // What arrived during the write waited long enough: an urgent item goes out at once. Items
      // nobody waits for keep their delay (their timer may have fired while the write was out).
      if (this.urgentQueued) this.kick();
      else this.armBackground();
    });
    this.writing = tracked;
    return tracked;
  }

  private drain(): Queued<T, R>[] {
    const pending = this.queue;
    this.queue = [];
    this.urgentQueued = false;
    return pending;
  }

  private cancelTimers(): void {
    this.windowTimer?.cancel();
    this.windowTimer = undefined;
    this.backgroundTimer?.cancel();
    this.backgroundTimer = undefined;
  }

  /** Writes `pending` in batches of at most maxItems, one after the other. */
  private writeAll(pending: readonly Queued<T, R>[]): void | Promise<void> {
    let start = 0;
    const next = (): void | Promise<void> => {
      while (start < pending.length) {
        const batch = pending.slice(start, start + this.bounds.maxItems);
        start += batch.length;
        const run = this.writeBatch(batch);
        if (run instanceof Promise) return run.then(next);
      }
    };
    return next();
  }

  private writeBatch(batch: readonly Queued<T, R>[]): void | Promise<void> {
    const written = this.observer?.writeStarted(batch.length);
    let out: readonly R[] | Promise<readonly R[]>;
    try {
      out = this.write(batch.map((q) => q.item));
    } catch {
      written?.(false);
      return this.writeAlone(batch);
    }
    if (out instanceof Promise) {
      return out.then((results) => {
        written?.(true);
        this.deliver(batch, results);
      }, () => {
        written?.(false);
        return this.writeAlone(batch);
      });
    }
    written?.(true);
    this.deliver(batch, out);
  }

  /** The shared write failed, so nothing of it is durable: each item on its own. */
  private writeAlone(batch: readonly Queued<T, R>[]): void | Promise<void> {
    let i = 0;
    const next = (): void | Promise<void> => {
      while (i < batch.length) {
        const q = batch[i++]!;
        let out: readonly R[] | Promise<readonly R[]>;
        try {
          out = this.write([q.item]);
        } catch (err) {
          this.deliverOne(q, toError(err));
          continue;
        }
        if (out instanceof Promise) {
          return out.then((r) => this.deliverOne(q, undefined, r[0]), (err) => this.deliverOne(q, toError(err))).then(next);
        }
        this.deliverOne(q, undefined, out[0]);
      }
      this.notifyFlushed();
    };
    return next();
  }

  private deliver(batch: readonly Queued<T, R>[], results: readonly R[]): void {
    assert(results.length === batch.length, `group commit: ${results.length} results for ${batch.length} items`);
    // Every waiter hears about its item; one that throws (an assertion) must not keep the others
    // from it, and is rethrown afterwards.
    let thrown: { error: unknown } | undefined;
    for (let i = 0; i < batch.length; i++) {
      try {
        batch[i]!.done?.(undefined, results[i]);
      } catch (error) {
        thrown ??= { error };
      }
    }
    if (thrown) throw thrown.error;
    this.notifyFlushed();
  }

  private deliverOne(q: Queued<T, R>, err: Error | undefined, result?: R): void {
    q.done?.(err, result);
  }

  private notifyFlushed(): void {
    for (const listener of this.flushedListeners) listener();
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

import { AbortError } from 'abort-controller-x';
import type { Random } from './random.js';

// Time comes in from outside (STYLE §11): protocol drivers read the time and schedule timers only
// through a Clock, so that a test or the simulator (test/simulation) can run them on simulated time.

/** A scheduled callback; cancel() is a no-op once it ran. */
export interface Timer {
  cancel(): void;
}

export interface TimerOptions {
  /** The timer must not keep the process alive (housekeeping such as pruning). */
  readonly background?: boolean;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  nowMs(): number;
  /** Runs `fn` after `ms`; 0 = once the current event-loop turn (its I/O callbacks included) is done. */
  setTimer(ms: number, fn: () => void, options?: TimerOptions): Timer;
}

/** The real clock: Date.now, setTimeout, and setImmediate for 0 ms. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  setTimer(ms, fn, options) {
    if (ms <= 0) {
      const handle = setImmediate(fn);
      if (options?.background) handle.unref();
      return { cancel: () => clearImmediate(handle) };
    }
    const handle = setTimeout(fn, ms);
    if (options?.background) handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};

/**
 * `clock` with its 0 ms timers one event-loop turn later: behind the socket writes queued in this
 * turn, which Node sends from its own immediate queue before the next turn's JavaScript
 * immediates. For a write that blocks the event loop (the gateway's SQLite log): the prepares
 * queued beside its records are on the wire, and the banks at work, before its fsync starts.
 */
export function behindSocketWrites(clock: Clock): Clock {
  return {
    nowMs: () => clock.nowMs(),
    setTimer(ms, fn, options) {
      if (ms > 0) return clock.setTimer(ms, fn, options);
      let inner: Timer | undefined;
      const outer = clock.setTimer(0, () => {
        inner = clock.setTimer(0, fn, options);
      }, options);
      return {
        cancel: () => {
          outer.cancel();
          inner?.cancel();
        },
      };
    },
  };
}

/** Resolves after `ms` on `clock`; rejects with AbortError as soon as `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortError());
      return;
    }
    const onAbort = () => {
      timer.cancel();
      reject(new AbortError());
    };
    const timer = clock.setTimer(ms, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Exponential backoff with jitter: attempt 1 waits about `baseMs`, each later attempt twice as
 * long, at most `maxMs`; the wait is drawn from [half, all] of that, so that many waiters retrying
 * the same peer spread out instead of arriving together.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: Random): number {
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30);
  const ceiling = Math.min(maxMs, baseMs * 2 ** exponent);
  return Math.round(ceiling * (0.5 + random() / 2));
}

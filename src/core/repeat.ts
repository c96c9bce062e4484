import type { Clock, Timer } from './clock.js';

// The one mechanism for housekeeping that runs every N ms (pruning, lease renewal and takeover,
// revocation re-reads, Consul re-registration). The next run is scheduled a full interval after
// the previous one ended, so runs never overlap and a slow store is not piled on; the timers are
// background timers (they never keep the process alive).

export interface RepeatOptions {
  /** From the end of one run to the start of the next. */
  readonly intervalMs: number;
  /** Before the first run; intervalMs unless given (0 = once the current event-loop turn is done). */
  readonly firstDelayMs?: number;
  /** A run's failure (a rejection or a throw); the next run is scheduled either way. Must not throw. */
  readonly onError: (err: unknown) => void;
}

export interface Repeating {
  /** No run starts after this; a run in flight finishes and is not followed by another. */
  stop(): void;
}

export function repeat(clock: Clock, options: RepeatOptions, run: () => Promise<unknown>): Repeating {
  let stopped = false;
  let timer: Timer | undefined;
  const schedule = (delayMs: number): void => {
    if (stopped) return;
    timer = clock.setTimer(delayMs, () => {
      timer = undefined;
      let running: Promise<unknown>;
      try {
        running = run();
      } catch (err) {
        running = Promise.reject(err);
      }
      running.catch(options.onError).finally(() => schedule(options.intervalMs));
    }, { background: true });
  };
  schedule(options.firstDelayMs ?? options.intervalMs);
  return {
    stop() {
      stopped = true;
      timer?.cancel();
    },
  };
}

import { systemClock, type Clock, type Timer } from '../../src/core/clock.js';
import { ConfigSchema } from '../../src/config/schema.js';
import type { WritableStoreOptions } from '../../src/gateway/store/sqlite.js';

/** A clock that reads the time from `nowMs` (a test moves it) and schedules on real timers. */
export function clockReading(nowMs: () => number): Clock {
  return { nowMs, setTimer: (ms, fn, options) => systemClock.setTimer(ms, fn, options) };
}

/** The config's defaults, for units built directly in tests. */
export const DEFAULT_CONFIG = ConfigSchema.parse({});

/** A writable gateway store's options with the config's group-commit bounds and the real clock. */
export function storeOptions(overrides: Partial<WritableStoreOptions['groupCommit']> = {}, clock: Clock = systemClock): WritableStoreOptions {
  return { groupCommit: { ...DEFAULT_CONFIG.gateway, ...overrides }, clock };
}

/** A clock that moves only when the test says so (advance); timers run in order of their due time. */
export class ManualClock implements Clock {
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  now = 0;
  nowMs(): number {
    return this.now;
  }
  setTimer(ms: number, fn: () => void): Timer {
    const t = { at: this.now + ms, fn, live: true };
    this.timers.push(t);
    return { cancel: () => { t.live = false; } };
  }
  /** Timers scheduled and neither run nor cancelled. */
  get pending(): number {
    return this.timers.filter((t) => t.live).length;
  }
  /** Moves time on by `ms`, running every timer that falls due (in order). */
  advance(ms: number): void {
    this.now += ms;
    for (;;) {
      const due = this.timers.filter((t) => t.live && t.at <= this.now).sort((a, b) => a.at - b.at)[0];
      if (!due) return;
      due.live = false;
      due.fn();
    }
  }
}

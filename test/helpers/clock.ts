import { systemClock, type Clock } from '../../src/core/clock.js';
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

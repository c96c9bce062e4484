// The 2PC coordinator: pure protocol logic (no I/O). The gateway's transfer driver executes it.
export * from './types.js';
export { step, nextDeadlineMs, durableOutcome } from './step.js';
export { recover, applyRecord, replayRecords, PRESUMED_ABORT, type Recovered } from './recover.js';

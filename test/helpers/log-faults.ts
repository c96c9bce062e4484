import type { LogRecord } from '../../src/coordinator/index.js';
import type { TransferLogWriter } from '../../src/gateway/store/transfer-log.js';

/**
 * Makes a transfer log (either backend) refuse the records `matches` picks while `failing` stays
 * true, as a full disk or a lost database connection would; `refused` counts them.
 */
export function refuseRecords(
  log: TransferLogWriter,
  matches: (record: LogRecord) => boolean,
  error = 'SQLITE_FULL: database or disk is full',
): { failing: boolean; refused: number } {
  const fault = { failing: true, refused: 0 };
  const enqueue = log.enqueue.bind(log);
  log.enqueue = (record, nowMs, onDurable, urgent) => {
    if (fault.failing && matches(record)) {
      fault.refused++;
      onDurable?.(new Error(error));
    } else enqueue(record, nowMs, onDurable, urgent);
  };
  return fault;
}

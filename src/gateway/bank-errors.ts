import { ClientError, Status } from 'nice-grpc';
import { isAbortError } from 'abort-controller-x';
import { AppError } from '../core/errors.js';
import { codeOf, isReason, type Code } from '../core/reasons.js';
import { reasonOf } from '../grpc/errors.js';

// Turns a failed bank call (a read or a login, not 2PC) into what the gateway's caller sees.
// A refusal the bank explains with a reason about the caller's input (bad password, no such
// account, bad page token) passes through with that reason, and so does a bank too busy to check
// a password now (RESOURCE_EXHAUSTED BANK_BUSY: try again later, the bank is up). Everything else
// is the system's fault, not the caller's: it becomes UNAVAILABLE or DEADLINE_EXCEEDED with a
// reason, never UNKNOWN.

/** Status codes whose bank reasons reach the caller as they are. */
const CALLER_CODES: ReadonlySet<Code> = new Set(['INVALID_ARGUMENT', 'UNAUTHENTICATED', 'NOT_FOUND', 'FAILED_PRECONDITION', 'RESOURCE_EXHAUSTED']);

/** The error to throw for a failed call to `bank`. Cancellations and our own bugs are returned as they are. */
export function bankCallError(err: unknown, bank: string): unknown {
  if (isAbortError(err) || !(err instanceof ClientError)) return err;
  if (err.code === Status.DEADLINE_EXCEEDED) {
    return new AppError('BANK_TIMEOUT', `bank ${bank} did not answer in time; try again`, { metadata: { bank } });
  }
  const reason = reasonOf(err);
  if (reason !== undefined && isReason(reason) && CALLER_CODES.has(codeOf(reason)) && err.code !== Status.UNAVAILABLE) {
    return new AppError(reason, err.details, { metadata: { bank } });
  }
  const what = err.code === Status.UNAVAILABLE ? 'is unavailable' : `failed (${Status[err.code]})`;
  return new AppError('BANK_UNAVAILABLE', `bank ${bank} ${what}; try again later`, { metadata: { bank } });
}

/** Runs one bank call and throws the mapped error if it fails. */
export async function callBank<T>(bank: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw bankCallError(err, bank);
  }
}

import type { ClientFailure } from './failure.js';

// Process exit codes of bin/client (documented in its --help).
export const EXIT = {
  OK: 0,
  /** The gateway refused the request (e.g. insufficient funds, unknown account). */
  REFUSED: 1,
  /** Bad command line, invalid input or configuration; nothing was sent. */
  USAGE: 2,
  /** Not logged in, session expired, or login refused. */
  AUTH: 3,
  /** The gateway could not be reached or did not answer in time. */
  UNREACHABLE: 4,
  /** A payment is kept in the offline queue and will be sent later (queue run or interactive). */
  QUEUED: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export function exitCodeOf(failure: ClientFailure): ExitCode {
  if (failure.isTransport) return EXIT.UNREACHABLE;
  if (failure.code === 'UNAUTHENTICATED' || failure.code === 'PERMISSION_DENIED') return EXIT.AUTH;
  if (failure.code === 'INVALID_ARGUMENT') return EXIT.USAGE;
  return EXIT.REFUSED;
}

import { ClientError, Status } from 'nice-grpc';
import { isAbortError } from 'abort-controller-x';
import { reasonOf } from '../grpc/errors.js';

// How every failed client operation surfaces: the gRPC status name, one machine-readable reason and a
// human message. Server refusals carry the gateway's ErrorInfo reason; failures the client detects
// itself use the client-side reasons below.

/** Reasons the client assigns itself (the gateway's reasons live in src/core/reasons.ts). */
export const CLIENT_REASONS = {
  /** No connection to the gateway (refused, TLS failure, network down). */
  GATEWAY_UNREACHABLE: 'GATEWAY_UNREACHABLE',
  /** The gateway did not answer within the call deadline. */
  GATEWAY_TIMEOUT: 'GATEWAY_TIMEOUT',
  /** The gateway answered something the contract does not allow. */
  INVALID_RESPONSE: 'INVALID_RESPONSE',
  NOT_LOGGED_IN: 'NOT_LOGGED_IN',
  SESSION_EXPIRED: 'SESSION_EXPIRED',
  SESSION_UNREADABLE: 'SESSION_UNREADABLE',
  /** Bad command line. */
  USAGE: 'USAGE',
  /** Bad or missing configuration, certificates or keys. */
  CONFIG: 'CONFIG',
} as const;

/** Reasons meaning "the request may not have reached the gateway": its outcome is unknown. */
const TRANSPORT_REASONS: ReadonlySet<string> = new Set([
  CLIENT_REASONS.GATEWAY_UNREACHABLE,
  CLIENT_REASONS.GATEWAY_TIMEOUT,
  'SHUTTING_DOWN',
]);

export class ClientFailure extends Error {
  override name = 'ClientFailure';
  constructor(
    /** gRPC status name, e.g. "FAILED_PRECONDITION". */
    readonly code: string,
    /** One machine-readable reason, e.g. "INSUFFICIENT_FUNDS". */
    readonly reason: string,
    message: string,
    /** Identifiers worth showing with the error (e.g. the idempotency key of a transfer). */
    readonly extra: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  /** True when the gateway may never have seen (or answered) the request. */
  get isTransport(): boolean {
    return TRANSPORT_REASONS.has(this.reason);
  }

  withMessage(message: string, extra: Record<string, string> = {}): ClientFailure {
    return new ClientFailure(this.code, this.reason, message, { ...this.extra, ...extra });
  }

  toJSON(): Record<string, string> {
    return { code: this.code, reason: this.reason, message: this.message, ...this.extra };
  }
}

export function usageFailure(message: string): ClientFailure {
  return new ClientFailure('INVALID_ARGUMENT', CLIENT_REASONS.USAGE, message);
}

export function configFailure(message: string): ClientFailure {
  return new ClientFailure('INVALID_ARGUMENT', CLIENT_REASONS.CONFIG, message);
}

export function invalidResponse(message: string): ClientFailure {
  return new ClientFailure('INTERNAL', CLIENT_REASONS.INVALID_RESPONSE, `unexpected answer from the gateway: ${message}`);
}

/**
 * Turns what a call threw into a ClientFailure. Abort errors and anything that is not a gRPC
 * failure (a bug, a missing file) are rethrown unchanged: they are not outcomes of the call.
 */
export function toClientFailure(err: unknown, address: string): ClientFailure {
  if (err instanceof ClientFailure) return err;
  if (isAbortError(err) || !(err instanceof ClientError)) throw err;
  const code = Status[err.code] ?? 'UNKNOWN';
  const reason = reasonOf(err);
  if (reason) return new ClientFailure(code, reason, err.details);
  // No ErrorInfo: the failure came from the transport (or a server that is not our gateway).
  if (err.code === Status.UNAVAILABLE) {
    return new ClientFailure(code, CLIENT_REASONS.GATEWAY_UNREACHABLE, `cannot reach the gateway at ${address}`);
  }
  if (err.code === Status.DEADLINE_EXCEEDED) {
    return new ClientFailure(code, CLIENT_REASONS.GATEWAY_TIMEOUT, `the gateway at ${address} did not answer in time`);
  }
  return new ClientFailure(code, code, err.details || code);
}

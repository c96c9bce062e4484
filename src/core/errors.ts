import { codeOf, type Code, type Reason } from './reasons.js';

// A failure to report to the caller: one reason, its status code, and a human message.
export interface Failure {
  readonly reason: Reason;
  readonly message: string;
}

export type Result<T> = { ok: true; value: T } | ({ ok: false } & Failure);

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail(reason: Reason, message: string): { ok: false } & Failure {
  return { ok: false, reason, message };
}

// Thrown at the service boundary; the error middleware turns it into a gRPC status with ErrorInfo.
export class AppError extends Error {
  override name = 'AppError';
  readonly code: Code;
  constructor(
    readonly reason: Reason,
    message: string,
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.code = codeOf(reason);
  }

  static from(failure: Failure): AppError {
    return new AppError(failure.reason, failure.message);
  }
}

/** The domain used in google.rpc.ErrorInfo for every error this system raises. */
export const ERROR_DOMAIN = 'payments.example';

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

/** What an AppError may carry besides its reason and message. */
export interface AppErrorDetails {
  /** Becomes google.rpc.ErrorInfo metadata. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** When the caller may try again, in ms from now; becomes google.rpc.RetryInfo. */
  readonly retryDelayMs?: number;
}

// Thrown at the service boundary; the error middleware turns it into a gRPC status with ErrorInfo
// (and RetryInfo when it carries a retry delay).
export class AppError extends Error {
  override name = 'AppError';
  readonly code: Code;
  readonly metadata: Readonly<Record<string, string>>;
  readonly retryDelayMs: number | undefined;
  constructor(
    readonly reason: Reason,
    message: string,
    details: AppErrorDetails = {},
  ) {
    super(message);
    this.code = codeOf(reason);
    this.metadata = details.metadata ?? {};
    this.retryDelayMs = details.retryDelayMs;
  }

  static from(failure: Failure): AppError {
    return new AppError(failure.reason, failure.message);
  }
}

/** The domain used in google.rpc.ErrorInfo for every error this system raises. */
export const ERROR_DOMAIN = 'payments.example';

/** What a caught value says, for a log line or an answer: an Error's message, anything else as text. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

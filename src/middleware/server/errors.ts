import { Status } from 'nice-grpc';
import { ServerError, type CallContext, type ServerMiddlewareCall } from 'nice-grpc-common';
import { isAbortError } from 'abort-controller-x';
import { ErrorInfo, RetryInfo, RichServerError } from 'nice-grpc-error-details';
import { AppError, ERROR_DOMAIN } from '../../core/errors.js';
import type { Code } from '../../core/reasons.js';
import type { Logger } from '../../logging/logger.js';

// Maps domain errors to gRPC statuses with one google.rpc.ErrorInfo reason. Anything unexpected
// becomes INTERNAL with a generic message (and is logged): internals never leak to callers.
// Must sit inside errorDetailsServerMiddleware so the details reach the wire.

export const STATUS_OF: Readonly<Record<Code, Status>> = {
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  NOT_FOUND: Status.NOT_FOUND,
  ALREADY_EXISTS: Status.ALREADY_EXISTS,
  FAILED_PRECONDITION: Status.FAILED_PRECONDITION,
  ABORTED: Status.ABORTED,
  UNAVAILABLE: Status.UNAVAILABLE,
  DEADLINE_EXCEEDED: Status.DEADLINE_EXCEEDED,
  RESOURCE_EXHAUSTED: Status.RESOURCE_EXHAUSTED,
  INTERNAL: Status.INTERNAL,
};

/** The status, one ErrorInfo with the reason and, if the error says when to try again, a RetryInfo. */
export function toServerError(err: AppError): RichServerError {
  const info = ErrorInfo.fromPartial({ reason: err.reason, domain: ERROR_DOMAIN, metadata: { ...err.metadata } });
  if (err.retryDelayMs === undefined) return new RichServerError(STATUS_OF[err.code], err.message, [info]);
  const ms = Math.max(0, Math.ceil(err.retryDelayMs));
  const retry = RetryInfo.fromPartial({ retryDelay: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 } });
  return new RichServerError(STATUS_OF[err.code], err.message, [info, retry]);
}

/** A failure nobody expected (a bug): logged with its stack, answered as INTERNAL with nothing of it. */
export function internalError(logger: Logger, method: string, err: unknown): RichServerError {
  logger.error('unexpected error', { method, error: err instanceof Error ? err.stack : String(err) });
  return new RichServerError(Status.INTERNAL, 'internal error', [
    ErrorInfo.fromPartial({ reason: 'INTERNAL', domain: ERROR_DOMAIN }),
  ]);
}

export function errorMappingMiddleware(logger: Logger) {
  return async function* errorMapping<Req, Res>(call: ServerMiddlewareCall<Req, Res>, context: CallContext) {
    try {
      return yield* call.next(call.request, context);
    } catch (err) {
      if (isAbortError(err)) throw err;
      if (err instanceof AppError) throw toServerError(err);
      if (err instanceof ServerError) throw err;
      throw internalError(logger, call.method.path, err);
    }
  };
}

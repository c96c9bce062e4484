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

/**
 * What a handler's failure of `method` becomes on the wire: a domain error its status and reason, a
 * ServerError itself, a cancellation itself (returned as it is), anything else INTERNAL (logged).
 */
export function wireErrorOf(err: unknown, logger: Logger, method: string): unknown {
  if (isAbortError(err) || err instanceof ServerError) return err;
  if (err instanceof AppError) return toServerError(err);
  logger.error('unexpected error', { method, error: err instanceof Error ? err.stack : String(err) });
  return new RichServerError(Status.INTERNAL, 'internal error', [
    ErrorInfo.fromPartial({ reason: 'INTERNAL', domain: ERROR_DOMAIN }),
  ]);
}

/** The ErrorInfo reason a server error carries, or '' if none. */
export function reasonOfServerError(err: ServerError): string {
  if (!(err instanceof RichServerError)) return '';
  for (const d of err.extra) if (d.$type === ErrorInfo.$type) return d.reason;
  return '';
}

export function errorMappingMiddleware(logger: Logger) {
  return async function* errorMapping<Req, Res>(call: ServerMiddlewareCall<Req, Res>, context: CallContext) {
    try {
      return yield* call.next(call.request, context);
    } catch (err) {
      throw wireErrorOf(err, logger, call.method.path);
    }
  };
}

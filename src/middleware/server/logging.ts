import { Status } from 'nice-grpc';
import { ServerError, type CallContext, type ServerMiddlewareCall } from 'nice-grpc-common';
import { isAbortError } from 'abort-controller-x';
import type { Logger } from '../../logging/logger.js';
import { callIds } from '../call-ids.js';

// Logs one line per call: method, peer, duration, status code and the transaction id it concerns.
// It logs and rethrows; it never changes an outcome. Never logs request bodies (passwords).

export function serverLoggingMiddleware(logger: Logger) {
  return async function* serverLogging<Req, Res>(call: ServerMiddlewareCall<Req, Res>, context: CallContext) {
    const started = performance.now();
    const base = { method: call.method.path, peer: context.peer, ...callIds(call.request) };
    try {
      const result = yield* call.next(call.request, context);
      logger.info('rpc', { ...base, code: 'OK', durationMs: round(performance.now() - started) });
      return result;
    } catch (err) {
      const durationMs = round(performance.now() - started);
      if (err instanceof ServerError) {
        const level = err.code === Status.INTERNAL || err.code === Status.UNKNOWN ? 'error' : 'info';
        logger.log(level, 'rpc', { ...base, code: Status[err.code], details: err.details, durationMs });
      } else if (isAbortError(err)) {
        logger.info('rpc', { ...base, code: 'CANCELLED', durationMs });
      } else {
        logger.error('rpc', { ...base, code: 'UNKNOWN', durationMs, error: String(err) });
      }
      throw err;
    }
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

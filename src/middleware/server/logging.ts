import { Status } from 'nice-grpc';
import { ServerError, type CallContext, type ServerMiddlewareCall } from 'nice-grpc-common';
import { isAbortError } from 'abort-controller-x';
import type { Logger } from '../../logging/logger.js';
import { callIds } from '../call-ids.js';

// Logs one line per call: method, peer, duration, status code and the transaction id it concerns.
// It logs and rethrows; it never changes an outcome. Never logs request bodies (passwords).
// Successful calls are logged at debug (thousands a second on the hot path), slow ones
// (config logging.slowCallMs or more) and failures at info or above.

export function serverLoggingMiddleware(logger: Logger, slowCallMs: number) {
  const debug = logger.isDebugEnabled();
  return async function* serverLogging<Req, Res>(call: ServerMiddlewareCall<Req, Res>, context: CallContext) {
    const started = performance.now();
    const base = { method: call.method.path, peer: context.peer, ...callIds(call.request) };
    try {
      const result = yield* call.next(call.request, context);
      const durationMs = round(performance.now() - started);
      if (durationMs >= slowCallMs) logger.info('rpc', { ...base, code: 'OK', durationMs, slow: true });
      else if (debug) logger.debug('rpc', { ...base, code: 'OK', durationMs });
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

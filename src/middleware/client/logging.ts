import { ClientError, Status, type CallOptions, type ClientMiddlewareCall } from 'nice-grpc';
import { isAbortError } from 'abort-controller-x';
import type { Logger } from '../../logging/logger.js';
import { callIds } from '../call-ids.js';

// Logs each outbound call (method, target, duration, status, transaction id) at debug level,
// failures at info. Logs and rethrows; never changes an outcome.

export function clientLoggingMiddleware(logger: Logger, target: string) {
  // A line that no transport takes still costs winston's whole pipeline: skip it up front.
  const debug = logger.isDebugEnabled();
  return async function* clientLogging<Req, Res>(call: ClientMiddlewareCall<Req, Res>, options: CallOptions) {
    const started = performance.now();
    const base = () => ({ method: call.method.path, target, ...callIds(call.request) });
    try {
      const result = yield* call.next(call.request, options);
      if (debug) logger.debug('call', { ...base(), code: 'OK', durationMs: Math.round(performance.now() - started) });
      return result;
    } catch (err) {
      const durationMs = Math.round(performance.now() - started);
      if (err instanceof ClientError) {
        logger.info('call', { ...base(), code: Status[err.code], details: err.details, durationMs });
      } else if (!isAbortError(err)) {
        logger.warn('call', { ...base(), code: 'UNKNOWN', error: String(err), durationMs });
      }
      throw err;
    }
  };
}

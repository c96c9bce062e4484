import { createServer, type Server } from 'nice-grpc';
import type { ServerMiddleware } from 'nice-grpc-common';
import { errorDetailsServerMiddleware } from 'nice-grpc-error-details';
import type { Logger } from '../logging/logger.js';
import { errorMappingMiddleware } from '../middleware/server/errors.js';
import { serverLoggingMiddleware } from '../middleware/server/logging.js';
import { peerIdentityInterceptorFor } from '../tls/peer-identity.js';
import { serverCredentials, type TlsMaterial } from '../tls/credentials.js';
import { malformedRequestMiddleware } from './malformed.js';

export interface NodeServerOptions {
  /** A successful call that took at least this long is logged at info (config logging.slowCallMs). */
  readonly slowCallMs: number;
  /**
   * Full names of the services whose calls need the TLS peer identity (those behind
   * peerAllowlistMiddleware); default every service.
   */
  readonly peerIdentityServices?: readonly string[];
  /** Largest request message accepted (grpc-js answers RESOURCE_EXHAUSTED beyond it); default grpc-js's 4 MiB. */
  readonly maxReceiveMessageBytes?: number;
  /** Counts and times every call (src/metrics/rpc.ts); outermost, so it sees the status the caller gets. */
  readonly rpcMetrics?: ServerMiddleware;
}

// The middleware stack every node's server shares, outermost first:
// RPC metrics by method and final status (when given) <- error details on the wire <- one log line per call <- domain errors mapped to statuses
// <- undecodable requests refused. Add services with guardDecode(definition) (src/grpc/malformed.ts)
// so undecodable bytes reach that last middleware instead of grpc-js's INTERNAL.
export function createNodeServer(logger: Logger, options: NodeServerOptions) {
  const services = options.peerIdentityServices;
  const needsIdentity = services === undefined
    ? () => true
    : (path: string) => services.some((s) => path.startsWith(`/${s}/`));
  const server = createServer({
    interceptors: [peerIdentityInterceptorFor(needsIdentity)],
    ...(options.maxReceiveMessageBytes === undefined ? {} : { 'grpc.max_receive_message_length': options.maxReceiveMessageBytes }),
  });
  return (options.rpcMetrics ? server.use(options.rpcMetrics) : server)
    .use(errorDetailsServerMiddleware)
    .use(serverLoggingMiddleware(logger, options.slowCallMs))
    .use(errorMappingMiddleware(logger))
    .use(malformedRequestMiddleware);
}

/** Listens with mutual TLS; returns the bound port (useful with port 0). */
export async function listenTls(server: Server, host: string, port: number, tls: TlsMaterial): Promise<number> {
  return server.listen(`${host}:${port}`, serverCredentials(tls));
}

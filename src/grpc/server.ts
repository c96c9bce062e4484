import { createServer, type Server } from 'nice-grpc';
import { errorDetailsServerMiddleware } from 'nice-grpc-error-details';
import type { Logger } from '../logging/logger.js';
import { errorMappingMiddleware } from '../middleware/server/errors.js';
import { serverLoggingMiddleware } from '../middleware/server/logging.js';
import { peerIdentityInterceptor } from '../tls/peer-identity.js';
import { serverCredentials, type TlsMaterial } from '../tls/credentials.js';

// The middleware stack every node's server shares, outermost first:
// error details on the wire <- one log line per call <- domain errors mapped to statuses.
export function createNodeServer(logger: Logger) {
  return createServer({ interceptors: [peerIdentityInterceptor] })
    .use(errorDetailsServerMiddleware)
    .use(serverLoggingMiddleware(logger))
    .use(errorMappingMiddleware(logger));
}

/** Listens with mutual TLS; returns the bound port (useful with port 0). */
export async function listenTls(server: Server, host: string, port: number, tls: TlsMaterial): Promise<number> {
  return server.listen(`${host}:${port}`, serverCredentials(tls));
}

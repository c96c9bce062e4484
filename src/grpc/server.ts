import { createServer, type Server } from 'nice-grpc';
import { errorDetailsServerMiddleware } from 'nice-grpc-error-details';
import type { Logger } from '../logging/logger.js';
import { errorMappingMiddleware } from '../middleware/server/errors.js';
import { serverLoggingMiddleware } from '../middleware/server/logging.js';
import { peerIdentityInterceptorFor } from '../tls/peer-identity.js';
import { serverCredentials, type TlsMaterial } from '../tls/credentials.js';

// The middleware stack every node's server shares, outermost first:
// error details on the wire <- one log line per call <- domain errors mapped to statuses.
// `peerIdentityServices`: full names of the services whose calls need the TLS peer identity
// (those behind peerAllowlistMiddleware); default every service.
export function createNodeServer(logger: Logger, options: { readonly peerIdentityServices?: readonly string[] } = {}) {
  const services = options.peerIdentityServices;
  const needsIdentity = services === undefined
    ? () => true
    : (path: string) => services.some((s) => path.startsWith(`/${s}/`));
  return createServer({ interceptors: [peerIdentityInterceptorFor(needsIdentity)] })
    .use(errorDetailsServerMiddleware)
    .use(serverLoggingMiddleware(logger))
    .use(errorMappingMiddleware(logger));
}

/** Listens with mutual TLS; returns the bound port (useful with port 0). */
export async function listenTls(server: Server, host: string, port: number, tls: TlsMaterial): Promise<number> {
  return server.listen(`${host}:${port}`, serverCredentials(tls));
}

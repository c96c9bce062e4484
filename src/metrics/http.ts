import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

// The node's Prometheus endpoint: plain HTTP, `GET /metrics` only, the text format of its own
// registry. Bound to config metrics.host (loopback by default): it carries no secrets, but it is
// not authenticated either.

/** Scrapers connected at once at most; more wait in the kernel's backlog. */
const METRICS_CONNECTIONS_MAX = 16;
/** A scrape must have sent its request within this. */
const METRICS_REQUEST_TIMEOUT_MS = 10_000;

export interface MetricsEndpoint {
  /** The bound port (the ephemeral one with port 0). */
  readonly port: number;
  /** Stops listening and drops open connections; calling it again returns the same promise. */
  close(): Promise<void>;
}

export async function serveMetrics(registry: Registry, host: string, port: number): Promise<MetricsEndpoint> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try GET /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  });
  server.maxConnections = METRICS_CONNECTIONS_MAX;
  server.requestTimeout = METRICS_REQUEST_TIMEOUT_MS;
  server.headersTimeout = METRICS_REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

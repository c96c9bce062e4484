import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { errorText } from '../core/errors.js';

// The node's Prometheus endpoint: plain HTTP, `GET /metrics` only, the text format of its own
// registry. Bound to config metrics.host (loopback by default): it carries no secrets, but it is
// not authenticated either.

/** Where and how the endpoint listens: config.metrics. */
export interface MetricsSettings {
  readonly host: string;
  readonly connectionsMax: number;
  readonly requestTimeoutMs: number;
}

export interface MetricsEndpoint {
  /** The bound port (the ephemeral one with port 0). */
  readonly port: number;
  /** Stops listening and drops open connections; calling it again returns the same promise. */
  close(): Promise<void>;
}

export async function serveMetrics(registry: Registry, settings: MetricsSettings, port: number): Promise<MetricsEndpoint> {
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
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${errorText(err)}\n`);
      },
    );
  });
  server.maxConnections = settings.connectionsMax;
  server.requestTimeout = settings.requestTimeoutMs;
  server.headersTimeout = settings.requestTimeoutMs;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, settings.host, () => {
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

import { EventEmitter } from 'node:events';
import Consul from 'consul';
import type { Config } from '../config/schema.js';
import { dialAddress } from '../tls/credentials.js';

// The npm `consul` client (promise API, lower-case option keys), set up from config, plus the two
// things the library leaves to the caller: the X-Consul-Index of a blocking query (it is only
// returned with a ctx that has includeResponse) and cancelling a request that is still waiting.

export type ConsulSettings = Config['consul'];
export type ConsulApi = InstanceType<typeof Consul>;

export function createConsul(settings: Pick<ConsulSettings, 'host' | 'httpPort'>): ConsulApi {
  return new Consul({ host: settings.host, port: settings.httpPort });
}

/** The agent's HTTP address, for messages. */
export function consulAddress(settings: Pick<ConsulSettings, 'host' | 'httpPort'>): string {
  return `${settings.host}:${settings.httpPort}`;
}

/** A request context the library understands: `includeResponse` for headers, `cancel` to abort. */
export class RequestContext extends EventEmitter {
  readonly includeResponse = true;

  cancel(): void {
    this.emit('cancel');
  }
}

/** One passing instance of a service, from /v1/health/service/<name>?passing. */
export interface ServiceInstance {
  readonly id: string;
  /** Dialable host:port (localhost for loopback, so TLS names match). */
  readonly address: string;
  readonly meta: Readonly<Record<string, string>>;
}

interface HealthEntry {
  Node?: { Address?: string };
  Service?: { ID?: string; Address?: string; Port?: number; Meta?: Record<string, string> | null };
}

export function instancesOf(body: unknown): ServiceInstance[] {
  if (!Array.isArray(body)) return [];
  const out: ServiceInstance[] = [];
  for (const entry of body as HealthEntry[]) {
    const s = entry.Service;
    if (!s?.ID || typeof s.Port !== 'number') continue;
    const host = s.Address || entry.Node?.Address || '127.0.0.1';
    out.push({ id: s.ID, address: dialAddress(host, s.Port), meta: s.Meta ?? {} });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

export interface BlockingResult {
  readonly instances: ServiceInstance[];
  /** X-Consul-Index to pass to the next query. */
  readonly index: string;
}

/**
 * Passing instances of `service`. With `index`, a blocking query: Consul answers when the result
 * changes or after `waitSeconds`. The request is bounded by a timeout a little past the wait
 * (Consul adds up to wait/16 of jitter) and can be cancelled through `ctx`.
 */
export async function passingInstances(
  consul: ConsulApi,
  service: string,
  options: { index?: string; waitSeconds?: number; timeoutMs: number; ctx?: RequestContext },
): Promise<BlockingResult> {
  const ctx = options.ctx ?? new RequestContext();
  const blocking = options.index !== undefined && options.waitSeconds !== undefined;
  const timeout = blocking ? options.waitSeconds! * 1000 * (17 / 16) + options.timeoutMs : options.timeoutMs;
  const query: Record<string, unknown> = { service, passing: true, ctx, timeout };
  if (blocking) {
    query.index = options.index;
    query.wait = `${options.waitSeconds}s`;
  }
  const [res, body] = (await consul.health.service(query as never)) as unknown as [
    { headers: Record<string, string | undefined> },
    unknown,
  ];
  const index = res.headers['x-consul-index'] ?? '0';
  return { instances: instancesOf(body), index };
}

/** Short description of a Consul client error for logs (no bodies, no secrets). */
export function consulErrorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

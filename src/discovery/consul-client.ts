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

// Request options the library takes on every call (lib/utils.js `options`) that its type declarations
// leave out: the HTTP deadline, a request context and, on reads, the blocking-query parameters. Declared
// once here, so call sites pass them typed instead of cast.
declare module 'consul/lib/consul.js' {
  interface CommonOptions {
    /** Deadline of the HTTP request, ms. */
    timeout?: number;
    /** Headers with the answer (`includeResponse`) and cancellation. */
    ctx?: RequestContext;
    /** Blocking query: answer once the X-Consul-Index moves past this one. */
    index?: string;
    /** Blocking query: the longest wait, e.g. "30s". */
    wait?: string;
  }
}
declare module 'consul/lib/kv.js' {
  // The kv options do not extend CommonOptions in the declarations; the library reads the same keys.
  interface GetOptions {
    /** Deadline of the HTTP request, ms. */
    timeout?: number;
  }
  interface SetOptions {
    /** Deadline of the HTTP request, ms. */
    timeout?: number;
  }
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
  const query = {
    service,
    passing: true,
    ctx,
    timeout,
    ...(blocking ? { index: options.index, wait: `${options.waitSeconds}s` } : {}),
  };
  // With ctx.includeResponse the library answers [response, body], which its types do not say.
  const [res, body] = (await consul.health.service(query)) as unknown as [
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

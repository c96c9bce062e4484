import type { Clock } from '../core/clock.js';
import { repeat, type Repeating } from '../core/repeat.js';
import type { Logger } from '../logging/logger.js';
import { consulAddress, consulErrorText, RequestContext, type ConsulApi, type ConsulSettings } from './consul-client.js';

// A node's entry in Consul: registered once it listens, with a gRPC health check over TLS that
// the agent runs every checkIntervalMs (the agent presents its client certificate from our CA:
// enable_agent_tls_for_checks). A node killed without a word turns critical within a few seconds
// and Consul removes it after deregisterCriticalServiceAfterSeconds. A graceful shutdown
// deregisters first, then drains. The registration is kept alive: if the agent restarts (a dev
// agent forgets everything) the node registers again; an unreachable agent is a warning, never a crash.

export interface Registrar {
  /** Registers the node that now listens on `port` and keeps the registration in place. */
  register(port: number): Promise<void>;
  /** Removes the registration (first step of a graceful shutdown). Idempotent. */
  deregister(): Promise<void>;
}

/** For static discovery: nothing to register. */
export const NO_REGISTRATION: Registrar = {
  async register() {},
  async deregister() {},
};

export interface ServiceSpec {
  /** Consul service name, e.g. payments-bank. */
  readonly name: string;
  /** Unique service id, e.g. payments-bank-BankA. */
  readonly id: string;
  /** The address the node listens on (its bind host). */
  readonly host: string;
  readonly tags?: readonly string[];
  readonly meta?: Readonly<Record<string, string>>;
}

export function bankServiceSpec(settings: ConsulSettings, bank: string, host: string): ServiceSpec {
  return { name: settings.bankService, id: `${settings.bankService}-${bank}`, host, tags: [bank], meta: { bank } };
}

/** One gateway instance among several: its own service id, its instance id in the metadata. */
export function gatewayServiceSpec(settings: ConsulSettings, host: string, instanceId: string): ServiceSpec {
  return { name: settings.gatewayService, id: `${settings.gatewayService}-${instanceId}`, host, meta: { instance: instanceId } };
}

/** The check target: the TLS certificates name localhost. */
function checkTarget(host: string, port: number): string {
  const h = host === '127.0.0.1' || host === '0.0.0.0' || host === '::1' ? 'localhost' : host;
  return `${h}:${port}`;
}

export class ConsulRegistration implements Registrar {
  private port: number | undefined;
  private refreshing: Repeating | undefined;
  private stopped = false;
  private unreachable = false;
  private readonly pending = new Set<RequestContext>();

  constructor(
    private readonly consul: ConsulApi,
    private readonly settings: ConsulSettings,
    private readonly logger: Logger,
    /** Time of the periodic re-registration. */
    private readonly clock: Clock,
    /** The spec; for the gateway the id depends on the port, so it may be computed late. */
    private readonly spec: ServiceSpec | ((port: number) => ServiceSpec),
  ) {}

  get serviceId(): string | undefined {
    return this.port === undefined ? undefined : this.specFor(this.port).id;
  }

  async register(port: number): Promise<void> {
    this.port = port;
    this.stopped = false;
    await this.ensureRegistered(true);
    if (this.stopped) return;
    // ensureRegistered handles (logs) its own failures and never rejects.
    this.refreshing = repeat(this.clock, { intervalMs: this.settings.registrationRefreshMs, onError: () => undefined },
      () => this.ensureRegistered(false));
  }

  async deregister(): Promise<void> {
    if (this.stopped || this.port === undefined) return;
    this.stopped = true;
    this.refreshing?.stop();
    for (const ctx of this.pending) ctx.cancel();
    const id = this.specFor(this.port).id;
    try {
      await this.consul.agent.service.deregister({ id, timeout: this.settings.requestTimeoutMs });
      this.logger.info('deregistered from consul', { service: id });
    } catch (err) {
      this.logger.warn('could not deregister from consul', { service: id, error: consulErrorText(err) });
    }
  }

  private specFor(port: number): ServiceSpec {
    return typeof this.spec === 'function' ? this.spec(port) : this.spec;
  }

  /** Registers unless the agent already has this service (after an agent restart it has not). */
  private async ensureRegistered(force: boolean): Promise<void> {
    const port = this.port!;
    const spec = this.specFor(port);
    const ctx = new RequestContext();
    this.pending.add(ctx);
    try {
      if (!force) {
        const [, services] = (await this.consul.agent.service.list({ ctx, timeout: this.settings.requestTimeoutMs })) as unknown as [
          unknown,
          Record<string, unknown>,
        ];
        if (this.stopped) return;
        if (this.unreachable) this.logger.info('consul reachable again', { consul: consulAddress(this.settings) });
        this.unreachable = false;
        if (services && Object.hasOwn(services, spec.id)) return;
      }
      if (this.stopped) return;
      await this.consul.agent.service.register({
        name: spec.name,
        id: spec.id,
        address: spec.host,
        port,
        tags: [...(spec.tags ?? [])],
        meta: { ...(spec.meta ?? {}) },
        check: {
          name: 'gRPC health over mutual TLS',
          grpc: checkTarget(spec.host, port),
          grpcusetls: true,
          interval: `${this.settings.checkIntervalMs}ms`,
          timeout: `${this.settings.checkTimeoutMs}ms`,
          deregistercriticalserviceafter: `${this.settings.deregisterCriticalServiceAfterSeconds}s`,
        },
        ctx,
        timeout: this.settings.requestTimeoutMs,
      });
      if (this.unreachable) this.logger.info('consul reachable again', { consul: consulAddress(this.settings) });
      this.unreachable = false;
      this.logger.info(force ? 'registered with consul' : 're-registered with consul', {
        service: spec.id,
        address: `${spec.host}:${port}`,
        consul: consulAddress(this.settings),
      });
    } catch (err) {
      if (this.stopped) return;
      if (!this.unreachable) {
        this.logger.warn('consul unreachable; registration will be retried', {
          service: spec.id,
          consul: consulAddress(this.settings),
          error: consulErrorText(err),
        });
      }
      this.unreachable = true;
    } finally {
      this.pending.delete(ctx);
    }
  }
}

import { backoffMs, sleep, type Clock, type Timer } from '../core/clock.js';
import type { Random } from '../core/random.js';
import type { Logger } from '../logging/logger.js';
import {
  consulAddress,
  consulErrorText,
  passingInstances,
  RequestContext,
  type ConsulApi,
  type ConsulSettings,
  type ServiceInstance,
} from './consul-client.js';
import type { Discovery, Endpoint } from './discovery.js';

// Discovery through Consul: the view holds the passing instances of the bank service (and/or the
// gateway service) and is kept current by blocking queries (index + wait), one long poll per
// watched service, so a lookup never does I/O. While the agent is unreachable the last known
// addresses stay in use (a warning is logged once per outage) and the watch retries with backoff;
// when the agent answers again the view follows it, without a restart.

/** The meta key naming the bank of a `payments-bank` instance. */
export const BANK_META_KEY = 'bank';

export interface ConsulDiscoveryOptions {
  readonly consul: ConsulApi;
  readonly settings: ConsulSettings;
  readonly logger: Logger;
  /** Banks from config.json: known (so NOT_FOUND is not answered) even with no passing instance. */
  readonly configuredBanks?: readonly string[];
  readonly watchBanks: boolean;
  readonly watchGateway: boolean;
  /** The pause (with jitter) between a watch's retries while the agent is unreachable, and ready()'s bound. */
  readonly clock: Clock;
  readonly random: Random;
  /** Told after each answer (true) or failure (false) of a watch, by service name (the node's metrics). */
  readonly onWatchState?: (service: string, up: boolean) => void;
}

export class ConsulDiscovery implements Discovery {
  private readonly banks = new Map<string, Endpoint>();
  private readonly knownBanks: Set<string>;
  private gatewayEndpoints: readonly Endpoint[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly pending = new Set<RequestContext>();
  /** Aborted by close(): wakes the watches' retry pauses. */
  private readonly closing = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly answered = new Set<string>();
  private readonly readyWaiters = new Set<() => void>();
  private closed = false;

  constructor(private readonly options: ConsulDiscoveryOptions) {
    this.knownBanks = new Set(options.configuredBanks ?? []);
  }

  /** Starts the watches. */
  start(): this {
    const { settings } = this.options;
    if (this.options.watchBanks) this.loops.push(this.watch(settings.bankService, (list) => this.applyBanks(list)));
    if (this.options.watchGateway) this.loops.push(this.watch(settings.gatewayService, (list) => this.applyGateway(list)));
    return this;
  }

  /** Resolves true once every watch has had one answer from Consul, false after timeoutMs. */
  async ready(timeoutMs: number): Promise<boolean> {
    const expected = this.loops.length;
    if (this.answered.size >= expected) return true;
    let timer: Timer | undefined;
    let wake: (() => void) | undefined;
    const done = await Promise.race([
      new Promise<true>((resolve) => {
        wake = () => {
          if (this.answered.size >= expected) resolve(true);
        };
        this.readyWaiters.add(wake);
      }),
      new Promise<false>((resolve) => {
        timer = this.options.clock.setTimer(timeoutMs, () => resolve(false));
      }),
    ]);
    timer?.cancel();
    if (wake) this.readyWaiters.delete(wake);
    return done;
  }

  bank(name: string): Endpoint | undefined {
    return this.banks.get(name);
  }

  bankNames(): readonly string[] {
    return [...this.knownBanks];
  }

  gateways(): readonly Endpoint[] {
    return this.gatewayEndpoints;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ctx of this.pending) ctx.cancel();
    this.closing.abort();
    await Promise.allSettled(this.loops);
  }

  private async watch(service: string, apply: (instances: ServiceInstance[]) => void): Promise<void> {
    const { consul, settings, logger } = this.options;
    let index: string | undefined;
    let failures = 0;
    let outage = false;
    while (!this.closed) {
      const ctx = new RequestContext();
      this.pending.add(ctx);
      try {
        const result = await passingInstances(consul, service, {
          index,
          waitSeconds: index === undefined ? undefined : settings.watchWaitSeconds,
          timeoutMs: settings.requestTimeoutMs,
          ctx,
        });
        if (this.closed) return;
        if (outage) logger.info('consul reachable again; discovery follows it', { service, consul: consulAddress(settings) });
        outage = false;
        failures = 0;
        // Consul's rule for blocking queries: an index that went backwards (agent restarted) or
        // is below 1 starts over.
        const next = BigInt(result.index);
        index = next < 1n || (index !== undefined && next < BigInt(index)) ? '0' : result.index;
        apply(result.instances);
        this.markAnswered(service);
        this.options.onWatchState?.(service, true);
      } catch (err) {
        if (this.closed) return;
        this.options.onWatchState?.(service, false);
        failures += 1;
        if (!outage) {
          logger.warn('consul unreachable; keeping the last known addresses', {
            service,
            consul: consulAddress(settings),
            error: consulErrorText(err),
          });
        }
        outage = true;
        // After an outage the agent may have restarted with a lower index: ask afresh.
        index = undefined;
        const pauseMs = backoffMs(failures, settings.watchRetryBaseDelayMs, settings.watchRetryMaxDelayMs, this.options.random);
        // Woken early (AbortError) only by close(), which ends the loop.
        await sleep(this.options.clock, pauseMs, this.closing.signal).catch(() => undefined);
      } finally {
        this.pending.delete(ctx);
      }
    }
  }

  private applyBanks(instances: ServiceInstance[]): void {
    const byBank = new Map<string, ServiceInstance[]>();
    for (const instance of instances) {
      const bank = instance.meta[BANK_META_KEY];
      if (!bank) continue;
      this.knownBanks.add(bank);
      byBank.set(bank, [...(byBank.get(bank) ?? []), instance]);
    }
    let changed = false;
    for (const [bank, list] of byBank) {
      const current = this.banks.get(bank);
      // Stay on the current instance while it passes; otherwise take the first (sorted by id).
      const chosen = list.find((i) => i.address === current?.address) ?? list[0]!;
      if (chosen.address !== current?.address) {
        this.banks.set(bank, { address: chosen.address });
        this.options.logger.info('bank instance passing', { bank, address: chosen.address, instance: chosen.id });
        changed = true;
      }
    }
    for (const bank of [...this.banks.keys()]) {
      if (byBank.has(bank)) continue;
      this.banks.delete(bank);
      this.options.logger.warn('bank has no passing instance', { bank });
      changed = true;
    }
    if (changed) this.emitChange();
  }

  private applyGateway(instances: ServiceInstance[]): void {
    const next = instances.map((i) => i.address).sort();
    const current = this.gatewayEndpoints.map((e) => e.address);
    if (next.length === current.length && next.every((a, i) => a === current[i])) return;
    this.gatewayEndpoints = next.map((address) => ({ address }));
    this.emitChange();
  }

  private emitChange(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.options.logger.error('discovery listener failed', { error: consulErrorText(err) });
      }
    }
  }

  private markAnswered(service: string): void {
    if (this.answered.has(service)) return;
    this.answered.add(service);
    for (const wake of this.readyWaiters) wake();
  }
}

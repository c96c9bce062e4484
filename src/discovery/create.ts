import fs from 'node:fs';
import type { Config } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { loadTls, tlsPaths, type TlsMaterial } from '../tls/credentials.js';
import { ConsulDiscovery } from './consul.js';
import { consulAddress, consulErrorText, createConsul, passingInstances, type ConsulApi } from './consul-client.js';
import { readTrust, trustKeys, TrustMaterialError } from './consul-trust.js';
import type { Discovery } from './discovery.js';
import { ConsulRegistration, NO_REGISTRATION, type Registrar, type ServiceSpec } from './registration.js';
import { StaticDiscovery } from './static.js';
import { systemClock } from '../core/clock.js';
import { systemRandom } from '../core/random.js';

// Picks the discovery a node runs with: Consul when config says so and the agent answers, else
// static addresses from config.json. Falling back is announced on stderr (and in the log), so a
// run without Consul is visible, never silent.

export type NodeRole = 'gateway' | 'bank' | 'client';

export interface DiscoverySetup {
  /** What is in use: 'consul', or 'static' (configured, or the fallback). */
  readonly mode: 'consul' | 'static';
  readonly discovery: Discovery;
  /** The agent's client when mode is 'consul' (registration, KV). */
  readonly consul: ConsulApi | undefined;
  /** Registration of this node (nothing to do in static mode). */
  registrar(spec: ServiceSpec | ((port: number) => ServiceSpec)): Registrar;
  close(): Promise<void>;
}

export interface CreateDiscoveryOptions {
  /** Where the fallback notice goes; stderr by default. */
  readonly notice?: (line: string) => void;
  /** Told whether each Consul watch gets answers (the node's metrics); unused with static discovery. */
  readonly onWatchState?: (service: string, up: boolean) => void;
}

export async function createDiscovery(
  config: Config,
  logger: Logger,
  role: NodeRole,
  options: CreateDiscoveryOptions = {},
): Promise<DiscoverySetup> {
  const notice = options.notice ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (config.discovery.mode === 'static') return staticSetup(config);

  const settings = config.consul;
  const consul = createConsul(settings);
  const probe = await probeAgent(consul, settings.requestTimeoutMs);
  if (!probe.ok) {
    if (settings.fallbackToStatic) {
      const text = `NOTICE: no Consul agent at ${consulAddress(settings)} (${probe.error}); ${role} uses static discovery from the configuration`;
      logger.warn('consul unavailable; falling back to static discovery', { consul: consulAddress(settings), error: probe.error });
      notice(text);
      consul.destroy();
      return staticSetup(config);
    }
    logger.warn('consul unreachable at start; will keep trying', { consul: consulAddress(settings), error: probe.error });
  }
  const discovery = new ConsulDiscovery({
    consul,
    settings,
    logger,
    configuredBanks: Object.keys(config.banks),
    watchBanks: role === 'gateway',
    // Banks ask the gateway about in-doubt transfers; the client dials it.
    watchGateway: role === 'client' || role === 'bank',
    clock: systemClock,
    random: systemRandom(),
    ...(options.onWatchState ? { onWatchState: options.onWatchState } : {}),
  }).start();
  // The gateway recovers transfers at start: give it the banks Consul knows before that.
  if (role === 'gateway' && probe.ok) await discovery.ready(settings.requestTimeoutMs);
  return {
    mode: 'consul',
    discovery,
    consul,
    registrar: (spec) => new ConsulRegistration(consul, settings, logger, systemClock, spec),
    async close() {
      await discovery.close();
      consul.destroy();
    },
  };
}

function staticSetup(config: Config): DiscoverySetup {
  const discovery = new StaticDiscovery(config);
  return {
    mode: 'static',
    discovery,
    consul: undefined,
    registrar: () => NO_REGISTRATION,
    close: () => discovery.close(),
  };
}

async function probeAgent(consul: ConsulApi, timeoutMs: number): Promise<{ ok: true } | { ok: false; error: string }> {
  try {
    await consul.agent.self({ timeout: timeoutMs });
    return { ok: true };
  } catch (err) {
    return { ok: false, error: consulErrorText(err) };
  }
}

/**
 * The gateway address(es) for a client that was given none: every passing `payments-gateway`
 * instance from Consul, comma-separated (mode 'consul'; the SDK fails over between them), else
 * config client.gatewayAddress (with a notice when Consul was asked and could not say).
 */
export async function resolveGatewayAddress(
  config: Config,
  options: CreateDiscoveryOptions = {},
): Promise<string> {
  const fallback = config.client.gatewayAddress;
  if (config.discovery.mode !== 'consul') return fallback;
  const notice = options.notice ?? ((line: string) => process.stderr.write(`${line}\n`));
  const settings = config.consul;
  const consul = createConsul(settings);
  try {
    const { instances } = await passingInstances(consul, settings.gatewayService, { timeoutMs: settings.requestTimeoutMs });
    if (instances.length > 0) return instances.map((i) => i.address).join(',');
    notice(`NOTICE: Consul knows no passing ${settings.gatewayService}; using client.gatewayAddress ${fallback}`);
  } catch (err) {
    notice(`NOTICE: no Consul agent at ${consulAddress(settings)} (${consulErrorText(err)}); using client.gatewayAddress ${fallback}`);
  } finally {
    consul.destroy();
  }
  return fallback;
}

/**
 * A node's TLS material: its key and certificate from tls.dir, and the CA certificate from tls.dir
 * or, with consul.trustFromKv, from Consul KV (published by the gateway; then no local ca.crt is needed).
 */
export async function loadNodeTls(config: Config, setup: DiscoverySetup, identity: string, logger: Logger): Promise<TlsMaterial> {
  if (!config.consul.trustFromKv) return loadTls(config.tls.dir, identity);
  const p = tlsPaths(config.tls.dir, identity);
  for (const f of [p.key, p.cert]) {
    if (!fs.existsSync(f)) throw new Error(`missing TLS file ${f}: run \`make certs\``);
  }
  const local = { ca: Buffer.alloc(0), key: fs.readFileSync(p.key), cert: fs.readFileSync(p.cert) };
  return withTrustFromKv(config, setup, local, logger);
}

/**
 * With consul.trustFromKv, the CA certificate comes from Consul KV (published by the gateway)
 * instead of tls.dir; the node's own key and certificate stay local. Without it, `tls` unchanged.
 */
export async function withTrustFromKv(config: Config, setup: DiscoverySetup, tls: TlsMaterial, logger: Logger): Promise<TlsMaterial> {
  if (!config.consul.trustFromKv) return tls;
  if (!setup.consul) {
    throw new TrustMaterialError('consul.trustFromKv is set but no Consul agent is in use');
  }
  const trust = await readTrust(setup.consul, config.consul.kvPrefix, config.consul.requestTimeoutMs);
  if (!trust.caPem) {
    throw new TrustMaterialError(`no CA certificate in Consul KV at ${trustKeys(config.consul.kvPrefix).ca} (start the gateway first)`);
  }
  logger.info('CA certificate read from consul KV', { key: trustKeys(config.consul.kvPrefix).ca });
  return { ...tls, ca: Buffer.from(trust.caPem) };
}

import type { Config } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { systemRandom } from '../core/random.js';
import { BankServiceDefinition } from '../gen/bank/v1/bank.js';
import { guardDecode } from '../grpc/malformed.js';
import { createNodeServer, listenTls } from '../grpc/server.js';
import { addReflection } from '../grpc/reflection.js';
import type { Logger } from '../logging/logger.js';
import { peerAllowlistMiddleware } from '../middleware/server/peer-allowlist.js';
import { loadTls, type TlsMaterial } from '../tls/credentials.js';
import { HealthDefinition, HealthServiceImpl, HealthState } from 'nice-grpc-server-health';
import { NO_REGISTRATION, type Registrar } from '../discovery/registration.js';
import { StaticDiscovery } from '../discovery/static.js';
import type { Discovery } from '../discovery/discovery.js';
import { startNodeTrace } from '../trace/critical-path.js';
import { BankTrace } from '../trace/bank-trace.js';
import { BankMetrics } from '../metrics/bank.js';
import { serveMetrics, type MetricsEndpoint } from '../metrics/http.js';
import { Ledger } from './ledger.js';
import { BatchStreams } from './batch-stream.js';
import { bankService } from './service.js';
import { GatewayDecisionSource, InDoubtResolver } from './termination.js';

// Builds and starts one bank node: ledger + gRPC server with mutual TLS, callable only by the gateway.

export interface RunningBank {
  readonly name: string;
  readonly port: number;
  /** The Prometheus endpoint's port; undefined when banks.<name>.metricsPort is unset. */
  readonly metricsPort: number | undefined;
  readonly ledger: Ledger;
  /** Stops accepting calls, lets in-flight calls finish, then closes the ledger. */
  stop(): Promise<void>;
}

export class UnknownBankError extends Error {
  override name = 'UnknownBankError';
}

export interface BankServerOptions {
  /** Where the in-doubt resolver finds the gateway; defaults to the static addresses in config. */
  readonly discovery?: Pick<Discovery, 'gateways'>;
  /** Registration with Consul once listening; removed first on stop. Defaults to none (static discovery). */
  readonly registrar?: Registrar;
  /** Defaults to the certificates in config tls.dir for identity `name` (e.g. with the CA from Consul KV). */
  readonly tls?: TlsMaterial;
  /**
   * The node's metrics (bin/bank creates them first, for its Consul watch); default a registry of
   * its own. Served on banks.<name>.metricsPort when that is set.
   */
  readonly metrics?: BankMetrics;
}

export async function startBankServer(
  config: Config,
  name: string,
  logger: Logger,
  options: BankServerOptions = {},
): Promise<RunningBank> {
  const node = config.banks[name];
  if (!node) {
    const known = Object.keys(config.banks).join(', ') || 'none';
    throw new UnknownBankError(`bank "${name}" is not in the configuration (known: ${known})`);
  }
  const tls = options.tls ?? loadTls(config.tls.dir, name);
  const ledger = Ledger.open(node.dataDir);
  const metrics = options.metrics ?? new BankMetrics(name);
  metrics.watchInDoubt(() => ledger.inDoubtLegCount());
  const server = createNodeServer(logger, { slowCallMs: config.logging.slowCallMs, peerIdentityServices: [BankServiceDefinition.fullName], ...(node.metricsPort === undefined ? {} : { rpcMetrics: metrics.rpc }) });
  // gRPC health, outside the peer allowlist so Consul's checks (any certificate of our CA) reach it;
  // NOT_SERVING until listening.
  const health = HealthState();
  health.setStatus('unhealthy');
  server.add(guardDecode(HealthDefinition), HealthServiceImpl(health));
  // Critical-path tracing for the benchmark (PAYMENTS_TRACE_CRITICAL_PATH=1; nothing is wrapped otherwise).
  const nodeTrace = startNodeTrace(name, node.dataDir);
  let service = bankService(ledger, config.bank, systemClock, metrics.ledger);
  if (nodeTrace) {
    const trace = new BankTrace(nodeTrace.recorder);
    trace.traceLedger(ledger);
    service = trace.service(service);
  }
  // The batch calls again as messages on one stream, over the same (traced) handlers.
  const streams = new BatchStreams(logger);
  // Only the gateway: its role and its name.
  const gateway = config.tls.gatewayIdentity;
  server
    .with(peerAllowlistMiddleware((peer) => peer.role === 'gateway' && peer.cn === gateway))
    .add(guardDecode(BankServiceDefinition), { ...service, batchStream: streams.handler(service) });
  addReflection(server, [BankServiceDefinition.fullName]);
  let port: number;
  let endpoint: MetricsEndpoint | undefined;
  try {
    if (node.metricsPort !== undefined) endpoint = await serveMetrics(metrics.registry, config.metrics, node.metricsPort);
    port = await listenTls(server, node.host, node.port, tls);
  } catch (err) {
    await endpoint?.close();
    nodeTrace?.close();
    ledger.close();
    throw err;
  }
  // Legs prepared for too long: ask the gateway (with this bank's certificate) for the outcome.
  const decisions = new GatewayDecisionSource(options.discovery ?? new StaticDiscovery(config), tls, logger,
    config.bank.inDoubtQueryTimeoutMs, config.grpc);
  const inDoubt = new InDoubtResolver(ledger, decisions, config.bank, logger, systemClock, systemRandom());
  inDoubt.start();
  health.setStatus('healthy');
  const registrar = options.registrar ?? NO_REGISTRATION;
  await registrar.register(port);
  logger.info('bank started', { port, ledger: ledger.file, ...(endpoint ? { metricsPort: endpoint.port } : {}) });
  let stopped: Promise<void> | undefined;
  return {
    name,
    port,
    metricsPort: endpoint?.port,
    ledger,
    stop() {
      // Out of Consul first, so the gateway stops routing here; then drain (the gateway's batch
      // streams end once their begun batches are answered); the metrics endpoint goes before the
      // ledger it reads.
      const drain = () => {
        streams.close();
        return Promise.all([inDoubt.stop(), server.shutdown()]);
      };
      stopped ??= registrar.deregister().then(() => health.setStatus('unhealthy')).then(drain).then(() => endpoint?.close()).finally(() => {
        nodeTrace?.close();
        ledger.close();
        logger.info('bank stopped');
      });
      return stopped;
    },
  };
}

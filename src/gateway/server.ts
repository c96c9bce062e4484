import fs from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import { HealthDefinition, HealthServiceImpl, HealthState } from 'nice-grpc-server-health';
import type { Config } from '../config/schema.js';
import type { Clock, Timer } from '../core/clock.js';
import type { Discovery } from '../discovery/discovery.js';
import { NO_REGISTRATION, type Registrar } from '../discovery/registration.js';
import { GatewayServiceDefinition } from '../gen/payments/v1/gateway.js';
import { CoordinatorServiceDefinition } from '../gen/coordinator/v1/coordinator.js';
import { peerAllowlistMiddleware } from '../middleware/server/peer-allowlist.js';
import { createCoordinatorService } from './coordinator-service.js';
import { guardDecode } from '../grpc/malformed.js';
import { createNodeServer, listenTls } from '../grpc/server.js';
import { addReflection } from '../grpc/reflection.js';
import type { Logger } from '../logging/logger.js';
import { GatewayMetrics } from '../metrics/gateway.js';
import { serveMetrics } from '../metrics/http.js';
import { authMiddleware } from '../middleware/server/auth.js';
import { loadTls, type TlsMaterial } from '../tls/credentials.js';
import { BankClients } from './bank-clients.js';
import { openTransferEngine, type OpenTransfers } from './engine-wiring.js';
import { openGatewayState } from './state.js';
import { createGatewayService, GATEWAY_PUBLIC_METHODS } from './service.js';
import { LoginThrottle, observedLoginThrottle } from './login-throttle.js';
import { sharedLoginGate } from './shared/login-failures.js';
import type { Transfers } from './transfers.js';

// Builds and starts the gateway node: signing key, logout denylist, bank channels, transfer engine
// (recovered before the first call is accepted) and the gRPC server with mutual TLS.

export interface GatewayServerOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly discovery: Discovery;
  /** Defaults to the certificates in config tls.dir for identity tls.gatewayIdentity. */
  readonly tls?: TlsMaterial;
  /** Defaults to the real transfer engine over the gateway's store (src/gateway/engine-wiring.ts). */
  readonly openTransfers?: OpenTransfers;
  /** Registration with Consul once listening; removed first on stop. Defaults to none (static discovery). */
  readonly registrar?: Registrar;
  /** Time of the login back-off and the shutdown grace. */
  readonly clock: Clock;
  /**
   * The node's metrics (bin/gateway creates them first, for its Consul watches); default a
   * registry of its own. Served on gateway.metricsPort when that is set.
   */
  readonly metrics?: GatewayMetrics;
}

export interface RunningGateway {
  readonly port: number;
  /** The Prometheus endpoint's port; undefined when gateway.metricsPort is unset. */
  readonly metricsPort: number | undefined;
  /** The token verification key set, for publication (e.g. through Consul). */
  readonly jwks: JSONWebKeySet;
  /**
   * Stops accepting calls and lets in-flight ones finish (cancelling them after graceMs), stops the
   * transfer engine, then closes the stores and bank channels. Calling it again returns the same promise.
   */
  stop(graceMs?: number): Promise<void>;
}

export async function startGatewayServer(options: GatewayServerOptions): Promise<RunningGateway> {
  const { config, logger, discovery, clock } = options;
  const limits = config.gateway;
  const tls = options.tls ?? loadTls(config.tls.dir, config.tls.gatewayIdentity);
  const metrics = options.metrics ?? new GatewayMetrics();
  fs.mkdirSync(limits.dataDir, { recursive: true });

  // What stop() (or a failed start) closes, newest first: server, engine, channels, denylist, metrics endpoint.
  const closers: ((graceMs: number) => Promise<void> | void)[] = [];
  const closeAll = async (graceMs: number) => {
    for (const close of closers.splice(0).reverse()) await close(graceMs);
  };
  try {
    // First, so that it is closed last: a scrape during start-up and shutdown still answers.
    const endpoint = limits.metricsPort === undefined ? undefined : await serveMetrics(metrics.registry, config.metrics, limits.metricsPort);
    if (endpoint) closers.push(() => endpoint.close());
    const state = await openGatewayState(config, clock, logger, metrics.groupCommit);
    closers.push(() => state.close());
    const { tokens, revocations } = state;
    const bankClients = new BankClients(discovery, tls, logger, {
      callTimeoutMs: limits.bankCallTimeoutMs,
      retryMaxAttempts: limits.bankCallRetryMaxAttempts,
      retryBaseDelayMs: limits.bankCallRetryBaseDelayMs,
      retryMaxDelayMs: limits.bankCallRetryMaxDelayMs,
      ...config.grpc,
    }, clock, limits.bankBatchStream);
    closers.push(() => bankClients.close());
    const transfers: Transfers = await (options.openTransfers ?? openTransferEngine)({ config, bankClients, logger, log: state.log, clock, metrics });
    closers.push((graceMs) => transfers.stop(graceMs));

    // Recovery runs before the server accepts a single call.
    await transfers.start();

    const health = HealthState();
    // NOT_SERVING until the server listens, and again while it drains.
    health.setStatus('unhealthy');
    // Every service but health admits one role, so its calls carry the TLS peer identity.
    const server = createNodeServer(logger, {
      slowCallMs: config.logging.slowCallMs,
      peerIdentityServices: [GatewayServiceDefinition.fullName, CoordinatorServiceDefinition.fullName],
      maxReceiveMessageBytes: limits.maxReceiveMessageBytes,
      // Counted only when someone can scrape them: no per-call work otherwise.
      ...(endpoint ? { rpcMetrics: metrics.rpc } : {}),
    });
    // Health stays outside the role and token checks so that Consul's checks (any certificate of our CA) reach it.
    server.add(guardDecode(HealthDefinition), HealthServiceImpl(health));
    // The client API: client certificates only; then the token (Login is public).
    // Several gateways count failed logins together; each keeps its own throttle in front.
    const localThrottle = new LoginThrottle(limits, () => clock.nowMs());
    const loginThrottle = observedLoginThrottle(state.loginFailures ? sharedLoginGate(localThrottle, state.loginFailures) : localThrottle, metrics);
    server
      .with(peerAllowlistMiddleware((peer) => peer.role === 'client'))
      .with(authMiddleware({ tokens, revocations, publicMethods: GATEWAY_PUBLIC_METHODS }))
      .add(guardDecode(GatewayServiceDefinition),
        createGatewayService({ banks: bankClients, discovery, transfers, tokens, revocations, limits, loginThrottle, logger }));
    // Decision queries of uncertain banks: only a bank's certificate (role bank, CN = a bank discovery knows).
    server
      .with(peerAllowlistMiddleware((peer) => peer.role === 'bank' && peer.cn !== undefined && discovery.bankNames().includes(peer.cn)))
      .add(guardDecode(CoordinatorServiceDefinition), createCoordinatorService(transfers));
    addReflection(server, [GatewayServiceDefinition.fullName, CoordinatorServiceDefinition.fullName]);
    const port = await listenTls(server, limits.host, limits.port, tls);
    closers.push((graceMs) => shutdownWithin(server, graceMs, clock));
    health.setStatus('healthy');
    const registrar = options.registrar ?? NO_REGISTRATION;
    await registrar.register(port);
    logger.info('gateway started', { port, dataDir: limits.dataDir, kid: tokens.key.kid, ...(endpoint ? { metricsPort: endpoint.port } : {}) });

    let stopped: Promise<void> | undefined;
    const stop = async (graceMs: number) => {
      // Out of Consul first, so no new caller is sent here; then drain.
      await registrar.deregister();
      health.setStatus('unhealthy');
      await closeAll(graceMs);
      logger.info('gateway stopped');
    };
    return {
      port,
      metricsPort: endpoint?.port,
      jwks: tokens.jwks(),
      stop(graceMs = limits.shutdownGraceMs) {
        stopped ??= stop(graceMs);
        return stopped;
      },
    };
  } catch (err) {
    await closeAll(limits.shutdownGraceMs);
    throw err;
  }
}

/** Graceful shutdown, bounded: calls still running after graceMs are cancelled. */
async function shutdownWithin(server: { shutdown(): Promise<void>; forceShutdown(): void }, graceMs: number, clock: Clock): Promise<void> {
  let timer: Timer | undefined;
  const graceful = server.shutdown();
  const expired = new Promise<'expired'>((resolve) => {
    timer = clock.setTimer(graceMs, () => resolve('expired'));
  });
  try {
    if ((await Promise.race([graceful, expired])) === 'expired') {
      server.forceShutdown();
      await graceful;
    }
  } finally {
    timer?.cancel();
  }
}

#!/usr/bin/env node
// The gateway node: wiring only. Usage:
//   bin/gateway [--config F] [--set key.path=value ...] [--port N] [--data-dir DIR] [--instance-id ID]
//   bin/gateway unfinished [--json] [--limit N] [--config F] ...   list unfinished transfers
//   bin/gateway rotate-key [--config F] [--data-dir DIR]            new token signing key (or --rotate-key at start)
import { parseArgs } from 'node:util';
import { formatUnfinished, listUnfinished } from '../src/gateway/admin.js';
import { toJson } from '../src/core/json.js';
import { systemClock } from '../src/core/clock.js';
import { loadConfigOrExit } from '../src/config/load.js';
import fs from 'node:fs';
import { createDiscovery } from '../src/discovery/create.js';
import { publishTrust } from '../src/discovery/consul-trust.js';
import { consulErrorText } from '../src/discovery/consul-client.js';
import { gatewayServiceSpec } from '../src/discovery/registration.js';
import { rotateSigningKey } from '../src/gateway/token-keys.js';
import { tlsPaths } from '../src/tls/credentials.js';
import { startGatewayServer } from '../src/gateway/server.js';
import { closeLogger, createLogger } from '../src/logging/logger.js';
import { GatewayMetrics } from '../src/metrics/gateway.js';
import { announceListening, onShutdownSignal } from '../src/process/lifecycle.js';

const USAGE = `usage: bin/gateway [--config FILE] [--set key.path=value ...] [--port N] [--data-dir DIR] [--instance-id ID]
       bin/gateway unfinished [--json] [--limit N] [--config FILE] [--data-dir DIR]   undecided / in-doubt transfers
       bin/gateway rotate-key [--config FILE] [--data-dir DIR]   new token signing key; tokens of the old one
                         stay valid until they expire (takes effect at the next start; --rotate-key: at this start)`;
/** Default bound of the unfinished listing. */
const UNFINISHED_LIST_MAX = 1000;

let parsed;
try {
  parsed = parseArgs({
    options: {
      config: { type: 'string' },
      set: { type: 'string', multiple: true, default: [] },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      'instance-id': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      json: { type: 'boolean' },
      limit: { type: 'string' },
      'rotate-key': { type: 'boolean' },
    },
    strict: true,
    allowPositionals: true,
  });
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
const { values: args, positionals } = parsed;
if (positionals.length > 1 || (positionals[0] !== undefined && positionals[0] !== 'unfinished' && positionals[0] !== 'rotate-key')) {
  process.stderr.write(`unknown command "${positionals.join(' ')}"\n${USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

// The shortcuts are --set assignments; JSON-quoted so a path like "123" stays a string.
const sets = [...args.set];
if (args.port !== undefined) sets.push(`gateway.port=${args.port}`);
if (args['data-dir'] !== undefined) sets.push(`gateway.dataDir=${JSON.stringify(args['data-dir'])}`);
if (args['instance-id'] !== undefined) sets.push(`gateway.instanceId=${JSON.stringify(args['instance-id'])}`);

const config = loadConfigOrExit({ path: args.config, sets });
if (positionals[0] === 'unfinished') {
  const limit = args.limit === undefined ? UNFINISHED_LIST_MAX : Number(args.limit);
  if (!Number.isInteger(limit) || limit <= 0) {
    process.stderr.write(`--limit must be a positive integer\n${USAGE}\n`);
    process.exit(2);
  }
  const list = await listUnfinished(config.gateway, limit);
  process.stdout.write(`${args.json ? toJson({ transfers: list }) : formatUnfinished(list)}\n`);
  process.exit(0);
}
if (positionals[0] === 'rotate-key' || args['rotate-key']) {
  const rotated = await rotateSigningKey(config.gateway.dataDir, { ttlSeconds: config.gateway.tokenTtlSeconds });
  const line = `token signing key rotated: new kid ${rotated.kid}; tokens of kid ${rotated.retiredKid} verify until they expire`;
  if (positionals[0] === 'rotate-key') {
    process.stdout.write(`${line} (restart the gateway to sign with it)\n`);
    process.exit(0);
  }
  process.stderr.write(`${line}\n`);
}
// Several instances share the log folder when they share a database: one file each.
const logger = createLogger({ node: config.gateway.store === 'postgres' ? `gateway-${config.gateway.instanceId}` : 'gateway', ...config.logging });
const metrics = new GatewayMetrics();
const setup = await createDiscovery(config, logger, 'gateway', { onWatchState: metrics.consulWatch });
const { discovery } = setup;

try {
  const gateway = await startGatewayServer({
    config,
    logger,
    discovery,
    registrar: setup.registrar(() => gatewayServiceSpec(config.consul, config.gateway.host, config.gateway.instanceId)),
    clock: systemClock,
    metrics,
  });
  if (setup.consul) {
    // Trust material for the other nodes: our CA certificate and the token verification keys.
    try {
      const caPem = fs.readFileSync(tlsPaths(config.tls.dir, config.tls.gatewayIdentity).ca, 'utf8');
      await publishTrust(setup.consul, config.consul.kvPrefix, { caPem, jwks: gateway.jwks }, config.consul.requestTimeoutMs);
      logger.info('trust material published to consul KV', { prefix: config.consul.kvPrefix, kids: gateway.jwks.keys.map((k) => k.kid) });
    } catch (err) {
      logger.warn('could not publish trust material to consul KV', { error: consulErrorText(err) });
    }
  }
  onShutdownSignal(async (signal) => {
    logger.info('shutting down', { signal });
    await gateway.stop(config.gateway.shutdownGraceMs);
    await setup.close();
    await closeLogger(logger);
  }, 2 * config.gateway.shutdownGraceMs + 1000);
  announceListening('gateway', gateway.port, { discovery: setup.mode, ...(gateway.metricsPort === undefined ? {} : { metricsPort: gateway.metricsPort }) });
} catch (err) {
  logger.error('gateway failed to start', { error: err instanceof Error ? err.message : String(err) });
  process.stderr.write(`gateway failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  await setup.close();
  await closeLogger(logger);
  process.exit(1);
}

// The gateway node: wiring only. Usage:
//   bin/gateway [--config F] [--set key.path=value ...] [--port N] [--data-dir DIR]
import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '../src/config/load.js';
import { StaticDiscovery } from '../src/discovery/static.js';
import { startGatewayServer } from '../src/gateway/server.js';
import { closeLogger, createLogger } from '../src/logging/logger.js';
import { announceListening, onShutdownSignal } from '../src/process/lifecycle.js';

const USAGE = 'usage: bin/gateway [--config FILE] [--set key.path=value ...] [--port N] [--data-dir DIR]';

let args;
try {
  args = parseArgs({
    options: {
      config: { type: 'string' },
      set: { type: 'string', multiple: true, default: [] },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
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

const config = loadConfigOrExit({ path: args.config, sets });
const logger = createLogger({ node: 'gateway', ...config.logging });
const discovery = new StaticDiscovery(config);

try {
  const gateway = await startGatewayServer({ config, logger, discovery });
  onShutdownSignal(async (signal) => {
    logger.info('shutting down', { signal });
    await gateway.stop(config.gateway.shutdownGraceMs);
    await discovery.close();
    await closeLogger(logger);
  }, 2 * config.gateway.shutdownGraceMs + 1000);
  announceListening('gateway', gateway.port);
} catch (err) {
  logger.error('gateway failed to start', { error: err instanceof Error ? err.message : String(err) });
  process.stderr.write(`gateway failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  await discovery.close();
  await closeLogger(logger);
  process.exit(1);
}

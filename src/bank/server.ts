import type { Config } from '../config/schema.js';
import { BankServiceDefinition } from '../gen/bank/v1/bank.js';
import { createNodeServer, listenTls } from '../grpc/server.js';
import type { Logger } from '../logging/logger.js';
import { peerAllowlistMiddleware } from '../middleware/server/peer-allowlist.js';
import { loadTls } from '../tls/credentials.js';
import { Ledger } from './ledger.js';
import { bankService } from './service.js';

// Builds and starts one bank node: ledger + gRPC server with mutual TLS, callable only by the gateway.

export interface RunningBank {
  readonly name: string;
  readonly port: number;
  readonly ledger: Ledger;
  /** Stops accepting calls, lets in-flight calls finish, then closes the ledger. */
  stop(): Promise<void>;
}

export class UnknownBankError extends Error {
  override name = 'UnknownBankError';
}

export async function startBankServer(config: Config, name: string, logger: Logger): Promise<RunningBank> {
  const node = config.banks[name];
  if (!node) {
    const known = Object.keys(config.banks).join(', ') || 'none';
    throw new UnknownBankError(`bank "${name}" is not in the configuration (known: ${known})`);
  }
  const tls = loadTls(config.tls.dir, name);
  const ledger = Ledger.open(node.dataDir);
  const server = createNodeServer(logger);
  server.with(peerAllowlistMiddleware([config.tls.gatewayIdentity])).add(BankServiceDefinition, bankService(ledger, config.bank));
  let port: number;
  try {
    port = await listenTls(server, node.host, node.port, tls);
  } catch (err) {
    ledger.close();
    throw err;
  }
  logger.info('bank started', { port, ledger: ledger.file });
  let stopped: Promise<void> | undefined;
  return {
    name,
    port,
    ledger,
    stop() {
      stopped ??= server.shutdown().finally(() => {
        ledger.close();
        logger.info('bank stopped');
      });
      return stopped;
    },
  };
}

import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import { systemRandom } from '../core/random.js';
import type { Logger } from '../logging/logger.js';
import type { BankClients } from './bank-clients.js';
import type { TransferLog } from './store/transfer-log.js';
import { TransferEngine } from './transfer-engine.js';
import type { Transfers } from './transfers.js';

// The one place where the gateway server meets the transfer engine: the gateway's durable log,
// the shared bank channels, and the limits from config.

export interface TransfersDeps {
  readonly config: Config;
  readonly bankClients: BankClients;
  readonly logger: Logger;
  /** The gateway's durable coordinator log (gateway/state.ts opens it for the configured backend). */
  readonly log: TransferLog;
  /** The gateway's clock (bin/gateway passes the real one). */
  readonly clock: Clock;
}

export type OpenTransfers = (deps: TransfersDeps) => Promise<Transfers> | Transfers;

export const openTransferEngine: OpenTransfers = ({ config, bankClients, logger, log, clock }) => {
  // The one real random source of the transfer path.
  return new TransferEngine({ store: log, bankClients, limits: config.gateway, logger, clock, random: systemRandom() });
};

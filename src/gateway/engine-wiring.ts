import type { Config } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
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
}

export type OpenTransfers = (deps: TransfersDeps) => Promise<Transfers> | Transfers;

export const openTransferEngine: OpenTransfers = ({ config, bankClients, logger, log }) => {
  // The one real clock and random source of the transfer path.
  return new TransferEngine({ store: log, bankClients, limits: config.gateway, logger, clock: systemClock, random: systemRandom() });
};

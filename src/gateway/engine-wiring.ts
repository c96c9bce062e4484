import type { Config } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { systemRandom } from '../core/random.js';
import type { Logger } from '../logging/logger.js';
import type { BankClients } from './bank-clients.js';
import { openTransferLog } from './store/open.js';
import { TransferEngine } from './transfer-engine.js';
import type { Transfers } from './transfers.js';

// The one place where the gateway server meets the transfer engine: the gateway's durable store
// in its data folder, the shared bank channels, and the limits from config.

export interface TransfersDeps {
  readonly config: Config;
  readonly bankClients: BankClients;
  readonly logger: Logger;
}

export type OpenTransfers = (deps: TransfersDeps) => Promise<Transfers> | Transfers;

export const openTransferEngine: OpenTransfers = async ({ config, bankClients, logger }) => {
  // The one real clock and random source of the transfer path.
  const store = await openTransferLog(config.gateway, systemClock);
  return new TransferEngine({ store, bankClients, limits: config.gateway, logger, clock: systemClock, random: systemRandom() });
};

import path from 'node:path';
import type { Config } from '../../config/schema.js';
import type { Clock } from '../../core/clock.js';
import { GATEWAY_DB_FILE, openSqliteLog, openSqliteLogReadOnly } from './sqlite.js';
import type { TransferLog, TransferLogReader } from './transfer-log.js';

// The one place that picks the transfer log's backend (config gateway.store).

/** Opens the gateway's transfer log for writing. */
export async function openTransferLog(gateway: Config['gateway'], clock: Clock): Promise<TransferLog> {
  return openSqliteLog(gateway.dataDir, { groupCommit: gateway, clock });
}

/** Opens the transfer log read-only, for operator commands next to a running gateway. */
export async function openTransferLogReader(gateway: Config['gateway']): Promise<TransferLogReader> {
  return openSqliteLogReadOnly(gateway.dataDir);
}

/** Where the embedded log lives (operators' messages). */
export function transferLogLocation(gateway: Config['gateway']): string {
  return path.join(gateway.dataDir, GATEWAY_DB_FILE);
}

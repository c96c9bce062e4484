import path from 'node:path';
import type { Config } from '../../config/schema.js';
import { systemClock } from '../../core/clock.js';
import { silentLogger } from '../../logging/logger.js';
import { connectPostgres } from './postgres-connect.js';
import { PostgresTransferLog } from './postgres.js';
import { GATEWAY_DB_FILE, openSqliteLogReadOnly } from './sqlite.js';
import type { TransferLogReader } from './transfer-log.js';

// Operators' read-only view of the transfer log, for the configured backend (config gateway.store).
// The gateway itself opens its log in gateway/state.ts.

/** Opens the transfer log read-only, for operator commands next to a running gateway. */
export async function openTransferLogReader(gateway: Config['gateway']): Promise<TransferLogReader> {
  if (gateway.store === 'sqlite') return openSqliteLogReadOnly(gateway.dataDir);
  const pool = await connectPostgres(gateway.postgres, silentLogger(), `payments-admin-${gateway.instanceId}`);
  let log: PostgresTransferLog;
  try {
    // Never enqueues: its group commit and leases are never used.
    log = new PostgresTransferLog({ pool, instanceId: gateway.instanceId, leaseMs: gateway.leaseMs, groupCommit: gateway, clock: systemClock });
  } catch (err) {
    await pool.end();
    throw err;
  }
  return {
    findById: (txId) => log.findById(txId),
    listUnfinished: (limit) => log.listUnfinished(limit),
    close: () => pool.end(),
  };
}

/** Where the embedded log lives (operators' messages). */
export function transferLogLocation(gateway: Config['gateway']): string {
  return path.join(gateway.dataDir, GATEWAY_DB_FILE);
}

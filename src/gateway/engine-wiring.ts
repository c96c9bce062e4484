import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import { systemRandom } from '../core/random.js';
import type { Logger } from '../logging/logger.js';
import type { GatewayMetrics } from '../metrics/gateway.js';
import { startNodeTrace } from '../trace/critical-path.js';
import { GatewayTrace } from '../trace/gateway-trace.js';
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
  /** The gateway's metrics: told of each decision and phase 2, and reads the unfinished transfers. */
  readonly metrics: GatewayMetrics;
}

export type OpenTransfers = (deps: TransfersDeps) => Promise<Transfers> | Transfers;

export const openTransferEngine: OpenTransfers = ({ config, bankClients, logger, log, clock, metrics }) => {
  // The one real random source of the transfer path.
  const deps = { limits: config.gateway, logger, clock, random: systemRandom(), observer: metrics };
  // Critical-path tracing for the benchmark (PAYMENTS_TRACE_CRITICAL_PATH=1; nothing is wrapped otherwise).
  const nodeTrace = startNodeTrace('gateway', config.gateway.dataDir);
  if (!nodeTrace) {
    const engine = new TransferEngine({ ...deps, store: log, bankClients });
    metrics.watchUnfinished(() => engine.activeTransfers);
    return engine;
  }
  const trace = new GatewayTrace(nodeTrace.recorder);
  trace.traceLog(log);
  const engine = new TransferEngine({ ...deps, store: log, bankClients: trace.bankClients(bankClients) });
  metrics.watchUnfinished(() => engine.activeTransfers);
  const traced = trace.transfers(engine);
  return { ...traced, stop: (graceMs) => traced.stop(graceMs).finally(() => nodeTrace.close()) };
};

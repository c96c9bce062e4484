import type { Config } from '../config/schema.js';
import { behindSocketWrites, type Clock } from '../core/clock.js';
import type { GroupCommitObserver } from '../core/group-commit.js';
import type { Logger } from '../logging/logger.js';
import { Revocations } from './revocations.js';
import { SharedLoginFailures } from './shared/login-failures.js';
import { SharedRevocations } from './shared/revocations.js';
import { SharedVerifyKeys } from './shared/verify-keys.js';
import { connectPostgres } from './store/postgres-connect.js';
import { PostgresTransferLog } from './store/postgres.js';
import { openSqliteLog } from './store/sqlite.js';
import type { TransferLog } from './store/transfer-log.js';
import { Tokens } from './tokens.js';

// Everything durable a gateway keeps, opened in one place for the configured backend
// (config gateway.store): the transfer log, the token keys and the logout denylist.
// - sqlite: one gateway; the log, the denylist and the signing key in its data folder.
// - postgres: several gateways share the log, the denylist and the public halves of their
//   signing keys (store/postgres*.ts, shared/*); each keeps its private key in its data folder.

export interface GatewayState {
  readonly log: TransferLog;
  readonly tokens: Tokens;
  readonly revocations: {
    revoke(tokenId: string, expiresAtMs: number): void | Promise<void>;
    isRevoked(tokenId: string): boolean | Promise<boolean>;
  };
  /** Failed logins every gateway instance counts (PostgreSQL); absent with one gateway. */
  readonly loginFailures?: SharedLoginFailures;
  /** Closes what is still open (the engine closes the log itself when it stops). */
  close(): Promise<void>;
}

/** `groupCommitObserver`: told of each group commit of the transfer log (the gateway's metrics). */
export async function openGatewayState(
  config: Config,
  clock: Clock,
  logger: Logger,
  groupCommitObserver?: GroupCommitObserver,
): Promise<GatewayState> {
  return config.gateway.store === 'postgres'
    ? openShared(config, clock, logger, groupCommitObserver)
    : openEmbedded(config, clock, groupCommitObserver);
}

async function openEmbedded(config: Config, clock: Clock, groupCommitObserver: GroupCommitObserver | undefined): Promise<GatewayState> {
  const gateway = config.gateway;
  const tokens = await Tokens.open(gateway.dataDir, { ttlSeconds: gateway.tokenTtlSeconds, verifiedMax: gateway.verifiedTokensMax, now: () => clock.nowMs() });
  const revocations = Revocations.open(gateway.dataDir, clock.nowMs());
  let log: TransferLog;
  try {
    // Its fsync blocks the event loop: the prepares queued beside a begin record leave first.
    log = openSqliteLog(gateway.dataDir, { groupCommit: gateway, clock: behindSocketWrites(clock), ...(groupCommitObserver ? { groupCommitObserver } : {}) });
  } catch (err) {
    revocations.close();
    throw err;
  }
  return {
    log,
    tokens,
    revocations: {
      revoke: (tokenId, expiresAtMs) => revocations.revoke(tokenId, expiresAtMs, clock.nowMs()),
      isRevoked: (tokenId) => revocations.isRevoked(tokenId),
    },
    async close() {
      if (log.isOpen) await log.close();
      revocations.close();
    },
  };
}

async function openShared(
  config: Config,
  clock: Clock,
  logger: Logger,
  groupCommitObserver: GroupCommitObserver | undefined,
): Promise<GatewayState> {
  const gateway = config.gateway;
  const pool = await connectPostgres(gateway.postgres, logger, `payments-gateway-${gateway.instanceId}`);
  try {
    const verifyKeys = new SharedVerifyKeys(pool, clock, gateway.tokenKeyRefreshMinIntervalMs);
    const tokens = await Tokens.open(gateway.dataDir, { ttlSeconds: gateway.tokenTtlSeconds, verifiedMax: gateway.verifiedTokensMax, now: () => clock.nowMs(), peers: verifyKeys });
    // Before the first token is issued: every instance can then verify it.
    await verifyKeys.publish(gateway.instanceId, { current: tokens.key, previous: tokens.previous });
    const revocations = await SharedRevocations.open(pool, { ...gateway, syncOverlapMs: gateway.postgres.statementTimeoutMs }, clock, logger);
    const loginFailures = SharedLoginFailures.open(pool, gateway, clock, logger);
    const log = new PostgresTransferLog({
      pool, instanceId: gateway.instanceId, leaseMs: gateway.leaseMs, groupCommit: gateway, clock,
      ...(groupCommitObserver ? { groupCommitObserver } : {}),
    });
    logger.info('shared gateway state on PostgreSQL', {
      instance: gateway.instanceId, host: gateway.postgres.host, port: gateway.postgres.port, database: gateway.postgres.database,
    });
    return {
      log,
      tokens,
      revocations,
      loginFailures,
      async close() {
        if (log.isOpen) await log.close();
        revocations.close();
        loginFailures.close();
        await pool.end();
      },
    };
  } catch (err) {
    await pool.end();
    throw err;
  }
}

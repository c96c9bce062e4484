import type { Clock } from '../../core/clock.js';
import { repeat, type Repeating } from '../../core/repeat.js';
import { AppError, errorText } from '../../core/errors.js';
import type { Logger } from '../../logging/logger.js';
import { OutageLog } from '../../logging/outage.js';
import type { Sql } from './sql.js';

// The logout denylist shared by several gateways (PostgreSQL). A logout at any instance inserts
// the token id (durable when the INSERT returns, before the caller hears OK). Every instance keeps
// the entries in memory, so checking a call costs a Map lookup, and re-reads what was revoked
// recently every syncIntervalMs: a token revoked at one instance is refused at all others within
// that interval. Should the re-reads fail for longer than maxStalenessMs, the memory can no longer
// vouch for a token: each check then asks the database itself (and a call fails UNAVAILABLE if
// it cannot), so staleness stays bounded even while the database is slow or away.

export interface SharedRevocationLimits {
  /** How often recent revocations are re-read. */
  readonly revocationSyncIntervalMs: number;
  /** Memory older than this is not trusted: checks go to the database. */
  readonly revocationMaxStalenessMs: number;
  /**
   * Recent revocations are re-read with this overlap, so that an INSERT whose revoked_at was taken
   * that long before it committed is still seen: the longest a statement may run (postgres.statementTimeoutMs).
   */
  readonly syncOverlapMs: number;
}

export class SharedRevocations {
  private readonly revoked = new Map<string, number>();
  /** Database time of the last successful sync (ms), and our clock's time of it. */
  private syncedDbMs = 0;
  private syncedAtMs = 0;
  private syncing: Repeating | undefined;
  /** One warning per run of failed re-reads, not one per attempt. */
  private readonly outage: OutageLog;

  private constructor(
    private readonly sql: Sql,
    private readonly limits: SharedRevocationLimits,
    private readonly clock: Clock,
    logger: Logger,
  ) {
    this.outage = new OutageLog(logger, 'could not re-read the shared revocation list; checks go to the database until it works',
      'revocation list in sync again');
  }

  /** Loads every unexpired entry and starts re-reading. */
  static async open(sql: Sql, limits: SharedRevocationLimits, clock: Clock, logger: Logger): Promise<SharedRevocations> {
    const r = new SharedRevocations(sql, limits, clock, logger);
    await r.sync(true);
    r.syncing = repeat(clock, { intervalMs: limits.revocationSyncIntervalMs, onError: (err) => r.outage.failed(err) }, async () => {
      await r.sync(false);
      r.outage.ok();
    });
    return r;
  }

  /** Revokes the token at every instance; durable when this resolves. */
  async revoke(tokenId: string, expiresAtMs: number): Promise<void> {
    const nowMs = this.clock.nowMs();
    if (expiresAtMs <= nowMs) return;
    try {
      await this.sql.query('INSERT INTO revoked_tokens (jti, expires_at_ms) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING', [tokenId, expiresAtMs]);
    } catch (err) {
      throw storeUnavailable(err);
    }
    this.revoked.set(tokenId, expiresAtMs);
  }

  /** A Map lookup while the memory is fresh; a database read when it is not. */
  isRevoked(tokenId: string): boolean | Promise<boolean> {
    if (this.revoked.has(tokenId)) return true;
    if (this.clock.nowMs() - this.syncedAtMs <= this.limits.revocationMaxStalenessMs) return false;
    return this.sql.query('SELECT 1 FROM revoked_tokens WHERE jti = $1', [tokenId]).then(
      (r) => (r.rowCount ?? 0) > 0,
      (err: unknown) => { throw storeUnavailable(err); },
    );
  }

  close(): void {
    this.syncing?.stop();
  }

  private async sync(full: boolean): Promise<void> {
    const startedAtMs = this.clock.nowMs();
    // One row at least (the database's time), plus one per entry read.
    const res = await this.sql.query<{ jti: string | null; expires_at_ms: string | null; db_now_ms: string }>(
      `WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms)
       SELECT r.jti, r.expires_at_ms, now.ms AS db_now_ms
         FROM now LEFT JOIN revoked_tokens r ON ${full ? 'r.expires_at_ms > $1' : 'r.revoked_at >= to_timestamp($1 / 1000.0)'}`,
      [full ? startedAtMs : this.syncedDbMs - this.limits.syncOverlapMs]);
    for (const row of res.rows) if (row.jti !== null && row.expires_at_ms !== null) this.revoked.set(row.jti, Number(row.expires_at_ms));
    this.syncedDbMs = Number(res.rows[0]!.db_now_ms);
    // Fresh as of when the read began (what committed before it is in it).
    this.syncedAtMs = startedAtMs;
    for (const [jti, expiresAtMs] of this.revoked) if (expiresAtMs <= startedAtMs) this.revoked.delete(jti);
    if (full) await this.sql.query('DELETE FROM revoked_tokens WHERE expires_at_ms <= $1', [startedAtMs]);
  }
}

/** A database failure as the caller sees it: try again (or another instance). */
export function storeUnavailable(err: unknown): AppError {
  return new AppError('STORE_UNAVAILABLE', `the shared gateway database cannot be reached now (${errorText(err)}); retry shortly`);
}

import type { Clock } from '../../core/clock.js';
import { errorText } from '../../core/errors.js';
import { repeat, type Repeating } from '../../core/repeat.js';
import type { Logger } from '../../logging/logger.js';
import { OutageLog } from '../../logging/outage.js';
import { MAX_DOUBLINGS, type FailureCounts, type GateAdmission, type LoginGate, type LoginThrottle, type LoginThrottleLimits } from '../login-throttle.js';
import type { Sql } from './sql.js';

// Failed logins counted across every gateway instance (PostgreSQL), so that an attacker who
// spreads guesses over the instances gets no more than against one. The same rules as the
// in-memory LoginThrottle (login-throttle.ts), computed in SQL on the database's clock: per
// account and per caller, a back-off that doubles from loginBackoffBaseMs to loginBackoffMaxMs once
// failuresMax failures are reached, forgotten loginFailureWindowMs after the last failure or the
// end of the back-off, an account cleared by a successful login. A failure is durable before the
// caller hears INVALID_CREDENTIALS, so the next attempt at any instance sees it.
//
// Each instance keeps its own LoginThrottle in front: it bounds the attempts in flight at once
// (parallel guesses) and it is what still holds should the database be away (logins then go on,
// throttled per instance; a warning says so).
//
// The table is bounded like the in-memory one: every loginThrottlePruneIntervalMs each instance
// deletes expired entries and, per scope, those beyond loginThrottleEntriesMax (the least recently
// failed first), at most loginThrottlePruneBatchMax rows per statement.

export interface SharedLoginFailureLimits extends LoginThrottleLimits {
  readonly loginThrottlePruneIntervalMs: number;
  readonly loginThrottlePruneBatchMax: number;
}

/** The table (a migration of the gateway's database). */
export const LOGIN_FAILURES_SCHEMA = `
CREATE TABLE login_failures (
  scope            text NOT NULL CHECK (scope IN ('account', 'peer')),
  key              text NOT NULL,
  failures         integer NOT NULL CHECK (failures > 0),
  last_failure_at  timestamptz NOT NULL,
  blocked_until    timestamptz,
  -- When the entry is forgotten: the window after the last failure or after the back-off's end.
  expires_at       timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE INDEX login_failures_by_expiry ON login_failures (scope, expires_at);
`;

type Scope = 'account' | 'peer';
/** A login held back by the failures every instance recorded: which key, and for how long. */
interface SharedRefusal {
  readonly scope: Scope;
  readonly retryAfterMs: number;
}
const SCOPES: readonly Scope[] = ['account', 'peer'];

// One failure of an account and of a caller ($1, $2), against their thresholds ($3, $4), with the
// back-off base and max ($5, $6) and the window ($7), all in ms. `f` is the stored row; an expired
// one starts again from zero. Every SET expression reads the row as it was.
const FAILURES = `(CASE WHEN f.expires_at <= now() THEN 0 ELSE f.failures END) + 1`;
const THRESHOLD = `(CASE f.scope WHEN 'account' THEN $3::int ELSE $4::int END)`;
const BLOCKED = `CASE WHEN ${FAILURES} >= ${THRESHOLD}
  THEN now() + least($6::float8, $5::float8 * power(2, least(${FAILURES} - ${THRESHOLD}, ${MAX_DOUBLINGS}))) * interval '1 millisecond' END`;
const RECORD_FAILURE = `
INSERT INTO login_failures AS f (scope, key, failures, last_failure_at, blocked_until, expires_at)
SELECT i.scope, i.key, 1, now(), b.until, greatest(now(), coalesce(b.until, now())) + $7::float8 * interval '1 millisecond'
  FROM (VALUES ('account', $1::text, $3::int), ('peer', $2::text, $4::int)) AS i(scope, key, threshold)
 CROSS JOIN LATERAL (SELECT CASE WHEN i.threshold <= 1 THEN now() + least($6::float8, $5::float8) * interval '1 millisecond' END AS until) b
    ON CONFLICT (scope, key) DO UPDATE SET
       failures = ${FAILURES},
       last_failure_at = now(),
       blocked_until = ${BLOCKED},
       expires_at = greatest(now(), coalesce(${BLOCKED}, now())) + $7::float8 * interval '1 millisecond'
RETURNING scope, failures`;

export class SharedLoginFailures {
  private pruning: Repeating | undefined;
  /** One warning per outage of the database, not one per login. */
  private readonly outage: OutageLog;

  private constructor(
    private readonly sql: Sql,
    private readonly limits: SharedLoginFailureLimits,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.outage = new OutageLog(logger, 'shared login throttle unreachable; logins are throttled per instance until it returns',
      'shared login throttle reachable again');
  }

  /** Starts the pruning rounds. */
  static open(sql: Sql, limits: SharedLoginFailureLimits, clock: Clock, logger: Logger): SharedLoginFailures {
    const shared = new SharedLoginFailures(sql, limits, clock, logger);
    shared.pruning = repeat(clock, {
      intervalMs: limits.loginThrottlePruneIntervalMs,
      onError: (err) => logger.warn('pruning shared login failures failed', { error: errorText(err) }),
    }, () => shared.prune());
    return shared;
  }

  close(): void {
    this.pruning?.stop();
  }

  /**
   * `op`'s answer, or undefined while the database is away (warned once per outage, noted when it
   * answers again): the instance's own throttle then holds alone.
   */
  async unlessAway<T>(op: () => Promise<T>): Promise<T | undefined> {
    try {
      const answer = await op();
      this.outage.ok();
      return answer;
    } catch (err) {
      this.outage.failed(err);
      return undefined;
    }
  }

  /** How long a login of `account` from `peer` must wait, by the failures of every instance; undefined = it may go. */
  async refusal(account: string, peer: string): Promise<SharedRefusal | undefined> {
    const res = await this.sql.query<{ scope: Scope; wait_ms: string }>(
      `SELECT scope, ceil(extract(epoch FROM blocked_until - now()) * 1000)::bigint AS wait_ms
         FROM login_failures
        WHERE ((scope = 'account' AND key = $1) OR (scope = 'peer' AND key = $2)) AND blocked_until > now()`,
      [account, peer]);
    let longest: SharedRefusal | undefined;
    for (const row of res.rows) {
      const retryAfterMs = Math.max(1, Number(row.wait_ms));
      if (!longest || retryAfterMs > longest.retryAfterMs) longest = { scope: row.scope, retryAfterMs };
    }
    return longest;
  }

  /** Records one failure of `account` from `peer` (durable when this resolves); the counts now stored. */
  async failed(account: string, peer: string): Promise<FailureCounts> {
    const l = this.limits;
    const res = await this.sql.query<{ scope: Scope; failures: number }>(RECORD_FAILURE, [
      account, peer, l.loginAccountFailuresMax, l.loginPeerFailuresMax, l.loginBackoffBaseMs, l.loginBackoffMaxMs, l.loginFailureWindowMs,
    ]);
    const of = (scope: Scope) => res.rows.find((r) => r.scope === scope)?.failures ?? 0;
    return { accountFailures: of('account'), peerFailures: of('peer') };
  }

  /** A successful login: the account's failures are forgotten at every instance. */
  async succeeded(account: string): Promise<void> {
    await this.sql.query(`DELETE FROM login_failures WHERE scope = 'account' AND key = $1`, [account]);
  }

  /** One pruning round: expired entries, then what exceeds the bound, per scope; returns how many went. */
  async prune(): Promise<number> {
    const { loginThrottleEntriesMax: keep, loginThrottlePruneBatchMax: batch } = this.limits;
    let pruned = 0;
    for (const scope of SCOPES) {
      const expired = await this.sql.query(
        `DELETE FROM login_failures WHERE scope = $1 AND key IN
           (SELECT key FROM login_failures WHERE scope = $1 AND expires_at <= now() ORDER BY expires_at LIMIT $2)`,
        [scope, batch]);
      const excess = await this.sql.query(
        `DELETE FROM login_failures WHERE scope = $1 AND key IN
           (SELECT key FROM login_failures WHERE scope = $1 ORDER BY expires_at DESC OFFSET $2 LIMIT $3)`,
        [scope, keep, batch]);
      pruned += (expired.rowCount ?? 0) + (excess.rowCount ?? 0);
    }
    return pruned;
  }
}

/**
 * The login gate of a gateway that shares its state: this process's throttle first (attempts in
 * flight, and the fallback), then the failures every instance recorded. A refusal by either is a
 * refusal; a failure is recorded in both before the caller hears of it.
 */
export function sharedLoginGate(local: Pick<LoginThrottle, 'begin'>, shared: SharedLoginFailures): LoginGate {
  return {
    async begin(account, peer): Promise<GateAdmission> {
      const admitted = local.begin(account, peer);
      if (!admitted.ok) return admitted;
      const refusal = await shared.unlessAway(() => shared.refusal(account, peer));
      if (refusal) {
        admitted.attempt.ended();
        return { ok: false, ...refusal };
      }
      const { attempt } = admitted;
      return {
        ok: true,
        attempt: {
          async failed() {
            const everywhere = await shared.unlessAway(() => shared.failed(account, peer));
            // The shared counts, when there, replace this instance's: a success at another
            // instance cleared the account there, and this one's memory must not outlive that
            // (one mistyped password here would otherwise meet the old back-off).
            return attempt.failed(everywhere);
          },
          async succeeded() {
            attempt.succeeded();
            await shared.unlessAway(() => shared.succeeded(account));
          },
          ended: () => attempt.ended(),
        },
      };
    },
  };
}

import fs from 'node:fs';
import pg from 'pg';
import type { Config } from '../../config/schema.js';
import { errorText } from '../../core/errors.js';
import type { Logger } from '../../logging/logger.js';
import { LOGIN_FAILURES_SCHEMA } from '../shared/login-failures.js';
import { SHARED_STATE_SCHEMA } from '../shared/sql.js';
import { TRANSFER_LOG_HOT_UPDATES, TRANSFER_LOG_SCHEMA } from './postgres.js';

// Connecting the gateway to its shared PostgreSQL: the password from outside config.json, a check
// that a commit is durable before PostgreSQL acknowledges it, and the schema migrations (applied
// once, under an advisory lock, since several gateways may start at the same time).

export type PostgresSettings = Config['gateway']['postgres'];

/** Every migration of the gateway's database, in order: version i+1 is MIGRATIONS[i]. Append only. */
export const MIGRATIONS: readonly string[] = [TRANSFER_LOG_SCHEMA, SHARED_STATE_SCHEMA, TRANSFER_LOG_HOT_UPDATES, LOGIN_FAILURES_SCHEMA];

/** The advisory lock that serialises migrations (an arbitrary constant, the same in every gateway). */
const MIGRATION_LOCK_KEY = 7_310_202_612;

/** Settings under which PostgreSQL acknowledges a commit before it is on disk. */
export function durabilityProblem(settings: { fsync: string; synchronous_commit: string }): string | undefined {
  if (settings.fsync !== 'on') return `fsync is ${settings.fsync}: a crash of the database server can lose acknowledged commits`;
  // on / remote_write / remote_apply / local all flush the WAL locally before acknowledging; only
  // off acknowledges before the flush.
  if (settings.synchronous_commit === 'off') return 'synchronous_commit is off: a commit is acknowledged before its WAL is flushed';
  return undefined;
}

export function postgresPassword(settings: PostgresSettings, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (settings.passwordEnv !== undefined) {
    const value = env[settings.passwordEnv];
    if (value === undefined) throw new Error(`gateway.postgres.passwordEnv names ${settings.passwordEnv}, which is not set`);
    return value;
  }
  if (settings.passwordFile !== undefined) {
    const mode = fs.statSync(settings.passwordFile).mode;
    if ((mode & 0o077) !== 0) {
      throw new Error(`gateway.postgres.passwordFile ${settings.passwordFile} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
    }
    return fs.readFileSync(settings.passwordFile, 'utf8').trim();
  }
  return undefined;
}

/** TLS options of the connections: off, or on with the server's certificate always verified. */
export function postgresTls(settings: PostgresSettings): false | { rejectUnauthorized: true; ca?: string } {
  if (!settings.ssl) return false;
  if (settings.sslCaFile === undefined) return { rejectUnauthorized: true };
  try {
    return { rejectUnauthorized: true, ca: fs.readFileSync(settings.sslCaFile, 'utf8') };
  } catch (err) {
    throw new Error(`gateway.postgres.sslCaFile ${settings.sslCaFile}: ${errorText(err)}`);
  }
}

/** Opens a pool, refuses a database that would lose acknowledged commits, applies migrations. */
export async function connectPostgres(settings: PostgresSettings, logger: Logger, applicationName: string): Promise<pg.Pool> {
  const password = postgresPassword(settings);
  const pool = new pg.Pool({
    host: settings.host,
    port: settings.port,
    database: settings.database,
    user: settings.user,
    ...(password !== undefined ? { password } : {}),
    ssl: postgresTls(settings),
    max: settings.poolMax,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    statement_timeout: settings.statementTimeoutMs,
    application_name: applicationName,
    // Every statement of the gateway finds its rows by an index. A new log's table is small and
    // unanalysed for its first minute or so (until autovacuum analyses it), and a plan cached then
    // (a named statement's generic plan lives as long as its connection) scanned the whole table
    // for every group commit as it grew: measured on a fresh database under the bench's load, 7.3
    // million rows read for 7,200 transfers, PostgreSQL at ~6 CPU-s per 10 s and 640/s; with this
    // setting 1.5 CPU-s and 1,050-1,100/s. A scan stays possible where no index serves (it is only
    // priced out).
    options: '-c enable_seqscan=off',
  });
  // An idle connection that breaks (a database restart) must not crash the gateway: the next
  // query opens a new one, and callers see their own query fail meanwhile.
  pool.on('error', (err) => logger.warn('PostgreSQL connection lost', { error: err.message }));
  try {
    const res = await pool.query<{ fsync: string; synchronous_commit: string }>(
      `SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit`);
    const problem = durabilityProblem(res.rows[0]!);
    if (problem) throw new Error(`refusing PostgreSQL at ${settings.host}:${settings.port}/${settings.database}: ${problem}`);
    await migrate(pool, logger);
    return pool;
  } catch (err) {
    await pool.end();
    throw err;
  }
}

async function migrate(pool: pg.Pool, logger: Logger): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = Number((await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations')).rows[0]?.v ?? 0);
    if (done > MIGRATIONS.length) throw new Error(`database schema version ${done} is newer than this gateway knows (${MIGRATIONS.length})`);
    for (let v = done + 1; v <= MIGRATIONS.length; v++) {
      await client.query(MIGRATIONS[v - 1]!);
      await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [v]);
    }
    await client.query('COMMIT');
    if (done < MIGRATIONS.length) logger.info('database schema migrated', { from: done, to: MIGRATIONS.length });
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

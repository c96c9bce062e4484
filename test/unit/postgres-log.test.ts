import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { systemClock } from '../../src/core/clock.js';
import { PRESUMED_ABORT, type LogRecord, type Tx } from '../../src/coordinator/index.js';
import { AppError } from '../../src/core/errors.js';
import { systemRandom } from '../../src/core/random.js';
import { SharedLoginFailures, sharedLoginGate } from '../../src/gateway/shared/login-failures.js';
import { SharedRevocations } from '../../src/gateway/shared/revocations.js';
import { LoginThrottle, type GateAdmission } from '../../src/gateway/login-throttle.js';
import { SharedVerifyKeys } from '../../src/gateway/shared/verify-keys.js';
import { connectPostgres, MIGRATIONS } from '../../src/gateway/store/postgres-connect.js';
import { PostgresTransferLog, TRANSFER_LOG_HOT_UPDATES } from '../../src/gateway/store/postgres.js';
import { RecordRefused } from '../../src/gateway/store/transfer-log.js';
import { Tokens } from '../../src/gateway/tokens.js';
import { TransferEngine } from '../../src/gateway/transfer-engine.js';
import { silentLogger } from '../../src/logging/logger.js';
import { eventually } from '../helpers/cluster.js';
import { DEFAULT_CONFIG } from '../helpers/clock.js';
import { refuseRecords } from '../helpers/log-faults.js';
import { PostgresServer } from '../helpers/postgres.js';

/** The configured bound of remembered verified tokens. */
const VERIFIED_MAX = DEFAULT_CONFIG.gateway.verifiedTokensMax;

// The shared (PostgreSQL) backend against a real server: group commit as one statement,
// idempotency keys claimed globally, the decision as a compare-and-set, leases and fencing
// between two gateway instances, the shared denylist and verify keys, and the durability check.

describe('PostgreSQL transfer log (two gateway instances, one real server)', function () {
  let server: PostgresServer;
  let pool: pg.Pool;
  const logs: PostgresTransferLog[] = [];

  before(async () => {
    server = await PostgresServer.start();
    pool = await connectPostgres(server.settings, silentLogger(), 'test');
  });
  after(async () => {
    await pool?.end();
    await server?.stop();
  });
  beforeEach(async () => {
    await pool.query('TRUNCATE transfers, revoked_tokens, token_verify_keys, login_failures');
  });
  afterEach(async () => {
    for (const log of logs.splice(0)) await log.close();
  });

  const open = (instanceId: string, leaseMs = 60_000) => {
    const log = new PostgresTransferLog({ pool, instanceId, leaseMs, groupCommit: DEFAULT_CONFIG.gateway, clock: systemClock });
    logs.push(log);
    return log;
  };
  const tx = (key: string = randomUUID()): Tx => ({
    id: randomUUID(), idempotencyKey: key, from: { bank: 'BankA', username: 'alice' }, to: { bank: 'BankB', username: 'bob' },
    amountMinor: 5n, currency: 'EUR', createdAtMs: Date.now(),
  });
  /** Queues a record; resolves with 'ok' or the refusal's kind / error name. */
  const write = (log: PostgresTransferLog, record: LogRecord) => new Promise<string>((resolve) => {
    log.enqueue(record, Date.now(), (err) => {
      if (!err) resolve('ok');
      else if (err instanceof RecordRefused) resolve(err.kind);
      else resolve(err.name);
    });
  });

  it('writes a batch of many transfers as one statement; each waiter runs once its record is durable', async () => {
    // The log's pool, counting the statements it is sent.
    let sent = 0;
    const counting = Object.create(pool) as pg.Pool;
    counting.query = ((...args: Parameters<pg.Pool['query']>) => { sent++; return (pool.query as (...a: unknown[]) => unknown)(...args); }) as pg.Pool['query'];
    const log = new PostgresTransferLog({ pool: counting, instanceId: 'g1', leaseMs: 60_000, groupCommit: DEFAULT_CONFIG.gateway, clock: systemClock });
    logs.push(log);
    const txs = [tx(), tx(), tx()];
    const seen: string[] = [];
    const durable = txs.map((t) => new Promise<void>((resolve) => {
      log.enqueue({ type: 'begin', tx: t }, Date.now(), (err) => {
        expect(err).to.equal(undefined);
        seen.push(t.id);
        resolve();
      });
    }));
    await Promise.all(durable);
    expect(seen).to.deep.equal(txs.map((t) => t.id));
    // Another connection sees every row: the statement committed before the waiters ran.
    const rows = await pool.query('SELECT tx_id, state, owner_instance, epoch FROM transfers ORDER BY created_at_ms');
    expect(rows.rows.map((r) => r.state)).to.deep.equal(['preparing', 'preparing', 'preparing']);
    expect(rows.rows.every((r) => r.owner_instance === 'g1' && Number(r.epoch) === 1)).to.equal(true);
    expect(sent).to.equal(1);
  });

  it('plans a group commit on a new, unanalysed log with indexes, never a scan of the whole table', async () => {
    // One connection, so that the log's named statement and the EXPLAIN share a session.
    const single = await connectPostgres({ ...server.settings, poolMax: 1 }, silentLogger(), 'plan');
    try {
      // The statement the log sends, captured on its way to the pool.
      type Param = string | number | null | readonly (string | number | null)[];
      const sent: { name: string; text: string; values: Param[] }[] = [];
      const capturing = Object.create(single) as pg.Pool;
      capturing.query = ((config: { name: string; text: string; values: Param[] }, ...rest: unknown[]) => {
        sent.push(config);
        return (single.query as (...a: unknown[]) => unknown)(config, ...rest);
      }) as pg.Pool['query'];
      const log = new PostgresTransferLog({ pool: capturing, instanceId: 'g1', leaseMs: 60_000, groupCommit: DEFAULT_CONFIG.gateway, clock: systemClock });
      logs.push(log);
      const t = tx();
      expect(await write(log, { type: 'begin', tx: t })).to.equal('ok');
      expect(await write(log, { type: 'decision', txId: t.id, decision: 'commit', awaiting: ['BankA', 'BankB'] })).to.equal('ok');
      // The plan a connection caches for the statement (its generic plan), made while the table is small.
      const batch = sent.at(-1)!;
      await single.query('SET plan_cache_mode = force_generic_plan');
      // EXPLAIN EXECUTE takes its parameters as literals (PostgreSQL's array text form for arrays).
      const quoted = (text: string) => `'${text.replace(/'/g, "''")}'`;
      const literal = (v: Param): string => {
        if (v === null) return 'NULL';
        if (typeof v === 'object') return quoted(`{${v.map((e) => (e === null ? 'NULL' : `"${String(e).replace(/["\\]/g, '\\$&')}"`)).join(',')}}`);
        return quoted(String(v));
      };
      const plan = (await single.query(`EXPLAIN EXECUTE "${batch.name}"(${batch.values.map(literal).join(', ')})`)).rows.map((r) => r['QUERY PLAN'] as string).join('\n');
      expect(plan).to.match(/Index Scan using transfers_pkey on transfers/);
      expect(plan, plan).to.not.match(/Seq Scan on transfers/);
    } finally {
      await single.end();
    }
  });

  it('runs a transfer to completion; both banks acknowledged in one batch', async () => {
    const log = open('g1');
    const t = tx();
    expect(await write(log, { type: 'begin', tx: t })).to.equal('ok');
    expect(await write(log, { type: 'decision', txId: t.id, decision: 'commit', awaiting: ['BankA', 'BankB'] })).to.equal('ok');
    expect(await Promise.all([write(log, { type: 'ack', txId: t.id, bank: 'BankA' }), write(log, { type: 'ack', txId: t.id, bank: 'BankB' })]))
      .to.deep.equal(['ok', 'ok']);
    expect(await log.findById(t.id)).to.deep.include({ state: 'committing', awaiting: [] });
    // A record out of order (an ack of a bank not awaited) is a bug, reported to its own waiter alone.
    expect(await write(log, { type: 'ack', txId: t.id, bank: 'BankA' })).to.equal('AssertionError');
    expect(await write(log, { type: 'completed', txId: t.id, outcome: { kind: 'committed' } })).to.equal('ok');
    expect((await log.findById(t.id))?.state).to.equal('committed');
    expect(await log.unfinished()).to.deep.equal([]);
  });

  it('claims an idempotency key once across instances: the second begin is refused key_taken', async () => {
    const [g1, g2] = [open('g1'), open('g2')];
    const first = tx();
    const again = tx(first.idempotencyKey);
    const sameBatch = tx(first.idempotencyKey);
    const results = await Promise.all([write(g1, { type: 'begin', tx: first }), write(g1, { type: 'begin', tx: sameBatch }), write(g2, { type: 'begin', tx: again })]);
    expect(results.filter((r) => r === 'ok')).to.have.length(1);
    expect(results.filter((r) => r === 'key_taken')).to.have.length(2);
    expect(Number((await pool.query('SELECT count(*) AS n FROM transfers')).rows[0].n)).to.equal(1);
  });

  it('a lapsed lease is taken over with a new epoch; the old owner is fenced and its decision never lands', async () => {
    const g1 = open('g1', 500);
    const g2 = open('g2', 60_000);
    const t = tx();
    expect(await write(g1, { type: 'begin', tx: t })).to.equal('ok');
    expect(await g2.leases.takeOverExpired(10)).to.deep.equal([]); // still leased
    await eventually(async () => (await g2.leases.takeOverExpired(10)).length === 1, 10_000, 'g1 lease to lapse and g2 to take the transfer');
    expect(await g1.leases.renew()).to.equal(0); // not g1's any more
    expect(await write(g1, { type: 'decision', txId: t.id, decision: 'commit', awaiting: ['BankA', 'BankB'] })).to.equal('fenced');
    const presumed = { reason: 'PREPARE_TIMEOUT' as const, message: 'presumed abort' };
    expect(await write(g2, { type: 'decision', txId: t.id, decision: 'abort', failure: presumed, awaiting: ['BankA', 'BankB'] })).to.equal('ok');
    const row = (await pool.query('SELECT state, owner_instance, epoch FROM transfers WHERE tx_id = $1', [t.id])).rows[0];
    expect(row).to.deep.include({ state: 'aborting', owner_instance: 'g2' });
    expect(Number(row.epoch)).to.equal(2);
    expect(await g2.leases.renew()).to.equal(1);
  });

  it('a restarted instance does not renew its previous incarnation\'s leases: they lapse and are taken over', async () => {
    const before = open('g1', 500);
    const t = tx();
    expect(await write(before, { type: 'begin', tx: t })).to.equal('ok');
    expect(await before.leases.renew()).to.equal(1);
    // The same instance id, a new process: it holds nothing yet, so it renews nothing.
    const after = open('g1', 500);
    expect(await after.leases.renew()).to.equal(0);
    await eventually(async () => (await after.leases.takeOverExpired(10)).length === 1, 10_000, 'the old lease to lapse and the restarted g1 to take it');
    expect(await after.leases.renew()).to.equal(1);
    expect(await write(before, { type: 'decision', txId: t.id, decision: 'commit', awaiting: ['BankA', 'BankB'] })).to.equal('fenced');
    expect(Number((await pool.query('SELECT epoch FROM transfers WHERE tx_id = $1', [t.id])).rows[0].epoch)).to.equal(2);
  });

  it('a released transfer (its run here stopped) is not renewed: its lease lapses and a takeover drives it', async () => {
    const g1 = open('g1', 500);
    const kept = tx();
    const released = tx();
    expect(await write(g1, { type: 'begin', tx: kept })).to.equal('ok');
    expect(await write(g1, { type: 'begin', tx: released })).to.equal('ok');
    expect(await g1.leases.renew()).to.equal(2);
    g1.leases.release(released.id);
    expect(await g1.leases.renew()).to.equal(1);
    // Its own takeover claims it once the lease lapsed (epoch 2), as another gateway's would.
    let taken: string[] = [];
    await eventually(async () => {
      taken = (await g1.leases.takeOverExpired(10)).map((r) => r.tx.id);
      await g1.leases.renew();
      return taken.length > 0;
    }, 10_000, 'the released lease to lapse and be taken over');
    expect(taken).to.deep.equal([released.id]);
    expect(await g1.leases.renew()).to.equal(2);
    expect(await write(g1, { type: 'decision', txId: released.id, decision: 'commit', awaiting: ['BankA', 'BankB'] })).to.equal('ok');
    expect(Number((await pool.query('SELECT epoch FROM transfers WHERE tx_id = $1', [released.id])).rows[0].epoch)).to.equal(2);
  });

  it('an engine whose decision could not be written lets the lease lapse; its own takeover then aborts the transfer', async () => {
    const log = open('g1', 500);
    // The log refuses decision records (as with a lost connection) until the test lets it write again.
    const fault = refuseRecords(log, (r) => r.type === 'decision', 'Connection terminated unexpectedly');
    const engine = new TransferEngine({
      store: log,
      // No bank is reachable: the transfer is decided abort at once.
      bankClients: { get: () => undefined },
      limits: { ...DEFAULT_CONFIG.gateway, leaseRenewIntervalMs: 100, takeoverIntervalMs: 100, strandedRetryIntervalMs: 50 },
      logger: silentLogger(),
      clock: systemClock,
      random: systemRandom(),
    });
    await engine.start();
    try {
      const alice = { bank: 'BankA', username: 'alice' };
      const key = randomUUID();
      const failed = await engine.create(alice, { idempotencyKey: key, to: { bank: 'BankB', username: 'bob' }, amountMinor: 5n, currency: 'EUR' })
        .then(() => 'answered', (err: unknown) => (err instanceof AppError ? err.reason : String(err)));
      expect(failed).to.equal('INTERNAL');
      const txId = (await log.findByKey(alice, key))?.tx.id as string;
      fault.failing = false;
      // Decided abort; its Aborts cannot reach the (unreachable) banks, so it may stay aborting.
      await eventually(async () => ['aborting', 'aborted'].includes((await log.findById(txId))?.state ?? ''), 10_000, 'the lease to lapse and the takeover to decide');
      expect(await log.findById(txId)).to.deep.include({ failure: PRESUMED_ABORT });
      expect(Number((await pool.query('SELECT epoch FROM transfers WHERE tx_id = $1', [txId])).rows[0].epoch)).to.equal(2);
    } finally {
      await engine.stop(0);
    }
  });

  it('renewal never waits for a row its own group commit holds: no deadlock, the locked row is skipped once', async () => {
    const g1 = open('g1');
    const [x, y] = [tx(), tx()];
    expect(await Promise.all([write(g1, { type: 'begin', tx: x }), write(g1, { type: 'begin', tx: y })])).to.deep.equal(['ok', 'ok']);
    // Another connection plays the group commit's statement midway: x locked, y next.
    const batch = await pool.connect();
    try {
      await batch.query('BEGIN');
      await batch.query('UPDATE transfers SET updated_at_ms = updated_at_ms + 1 WHERE tx_id = $1', [x.id]);
      const renewed = g1.leases.renew();
      let settled = false;
      void renewed.then(() => { settled = true; }, () => { settled = true; });
      // The renewal has either finished, or is at the server waiting for x's lock (the old way).
      await eventually(async () => settled || Number((await pool.query(`SELECT count(*) AS n FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE transfers t SET lease_expires_at%'`)).rows[0].n) > 0,
      10_000, 'the renewal to finish or to wait for a lock');
      // The opposite order: had the renewal taken y and waited for x, this closes a deadlock cycle.
      await batch.query('UPDATE transfers SET updated_at_ms = updated_at_ms + 1 WHERE tx_id = $1', [y.id]);
      await batch.query('COMMIT');
      // x was locked, so only y was renewed.
      expect(await renewed).to.equal(1);
    } finally {
      batch.release();
    }
    expect(await g1.leases.renew()).to.equal(2);
  });

  it('shares logouts and verify keys between instances', async () => {
    const dirs = [fs.mkdtempSync(path.join(os.tmpdir(), 'pg-tokens-')), fs.mkdtempSync(path.join(os.tmpdir(), 'pg-tokens-'))];
    const limits = { revocationSyncIntervalMs: 50, revocationMaxStalenessMs: 1000, syncOverlapMs: DEFAULT_CONFIG.gateway.postgres.statementTimeoutMs };
    const [ra, rb] = [await SharedRevocations.open(pool, limits, systemClock, silentLogger()), await SharedRevocations.open(pool, limits, systemClock, silentLogger())];
    try {
      const keysA = new SharedVerifyKeys(pool, systemClock, DEFAULT_CONFIG.gateway.tokenKeyRefreshMinIntervalMs);
      const keysB = new SharedVerifyKeys(pool, systemClock, DEFAULT_CONFIG.gateway.tokenKeyRefreshMinIntervalMs);
      const a = await Tokens.open(dirs[0]!, { verifiedMax: VERIFIED_MAX, ttlSeconds: 3600, peers: keysA });
      const b = await Tokens.open(dirs[1]!, { verifiedMax: VERIFIED_MAX, ttlSeconds: 3600, peers: keysB });
      const issued = await a.issue({ bank: 'BankA', username: 'alice' });
      // Not published yet: B cannot verify A's token.
      expect((await b.verify(issued.token)).ok).to.equal(false);
      await keysA.publish('g1', { current: a.key, previous: a.previous });
      await eventually(async () => (await b.verify(issued.token)).ok, 10_000, 'B to find A\'s published key');
      await ra.revoke(issued.tokenId, issued.expiresAtMs);
      expect(await ra.isRevoked(issued.tokenId)).to.equal(true);
      await eventually(async () => rb.isRevoked(issued.tokenId) === true, 5000, 'the logout at A to reach B');
      // A revocation that committed late: its revoked_at is older than B's last re-read, but
      // within the overlap (the statement timeout), so B still sees it.
      await pool.query(`INSERT INTO revoked_tokens (jti, expires_at_ms, revoked_at) VALUES ('late-commit', $1, clock_timestamp() - interval '3 seconds')`,
        [Date.now() + 3_600_000]);
      await eventually(async () => rb.isRevoked('late-commit') === true, 5000, 'the late-committed logout to reach B');
    } finally {
      ra.close();
      rb.close();
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    }
  });

  describe('failed logins counted by every instance', () => {
    const limits = {
      loginAccountFailuresMax: 3, loginPeerFailuresMax: 100, loginFailureWindowMs: 3_600_000, loginBackoffBaseMs: 60_000,
      loginBackoffMaxMs: 600_000, loginThrottleEntriesMax: 100, loginThrottlePruneIntervalMs: 3_600_000, loginThrottlePruneBatchMax: 100,
    };
    const opened: SharedLoginFailures[] = [];
    afterEach(() => { for (const s of opened.splice(0)) s.close(); });
    /** One gateway instance's gate: its own in-memory throttle, the shared table behind it. */
    const instance = (l = limits) => {
      const shared = SharedLoginFailures.open(pool, l, systemClock, silentLogger());
      opened.push(shared);
      return { gate: sharedLoginGate(new LoginThrottle(l, () => Date.now()), shared), shared };
    };
    const admitted = (a: GateAdmission) => {
      if (!a.ok) throw new Error(`refused: ${a.scope} for ${a.retryAfterMs} ms`);
      return a.attempt;
    };

    it('failures at one instance throttle the account at the others, with the time left to wait', async () => {
      const [a, b] = [instance(), instance()];
      await admitted(await a.gate.begin('BankA/alice', 'peer1')).failed();
      await admitted(await a.gate.begin('BankA/alice', 'peer2')).failed();
      // b has seen none itself; the counts are everyone's.
      expect(await admitted(await b.gate.begin('BankA/alice', 'peer3')).failed()).to.deep.equal({ accountFailures: 3, peerFailures: 1 });
      const refused = await a.gate.begin('BankA/alice', 'peer4');
      expect(refused).to.deep.include({ ok: false, scope: 'account' });
      expect(!refused.ok && refused.retryAfterMs).to.be.within(1, limits.loginBackoffBaseMs);
      // Another account from the same callers is not held back.
      await admitted(await b.gate.begin('BankA/bob', 'peer1')).succeeded();
    });

    it('a successful login clears the account\'s failures everywhere, not its caller\'s', async () => {
      const [a, b] = [instance(), instance()];
      await admitted(await a.gate.begin('BankA/alice', 'peer1')).failed();
      await admitted(await b.gate.begin('BankA/alice', 'peer1')).succeeded();
      const rows = (await pool.query('SELECT scope, key, failures FROM login_failures ORDER BY scope')).rows;
      expect(rows).to.deep.equal([{ scope: 'peer', key: 'peer1', failures: 1 }]);
    });

    it('a success at one instance clears what the others remember: the next failure there counts from zero', async () => {
      const [a, b] = [instance(), instance()];
      await admitted(await a.gate.begin('BankA/alice', 'peer1')).failed();
      await admitted(await a.gate.begin('BankA/alice', 'peer1')).failed();
      await admitted(await b.gate.begin('BankA/alice', 'peer1')).succeeded();
      // a's own memory said 2; the shared table says the account starts again.
      expect(await admitted(await a.gate.begin('BankA/alice', 'peer1')).failed()).to.deep.equal({ accountFailures: 1, peerFailures: 3 });
      // So one more typo at a is no back-off yet (the third is).
      await admitted(await a.gate.begin('BankA/alice', 'peer1')).failed();
      expect(await admitted(await a.gate.begin('BankA/alice', 'peer1')).failed()).to.deep.equal({ accountFailures: 3, peerFailures: 5 });
      expect(await a.gate.begin('BankA/alice', 'peer1')).to.deep.include({ ok: false, scope: 'account' });
    });

    it('prunes expired entries, and the least recently failed beyond the bound', async () => {
      const { gate, shared } = instance({ ...limits, loginThrottleEntriesMax: 2 });
      for (const user of ['u1', 'u2', 'u3']) await admitted(await gate.begin(`BankA/${user}`, `peer-${user}`)).failed();
      expect(await shared.prune()).to.equal(2); // u1 of each scope
      const keys = (await pool.query('SELECT key FROM login_failures ORDER BY key')).rows.map((r) => r.key);
      expect(keys).to.deep.equal(['BankA/u2', 'BankA/u3', 'peer-u2', 'peer-u3']);
      await pool.query(`UPDATE login_failures SET expires_at = now() - interval '1 second' WHERE key IN ('BankA/u2', 'peer-u2')`);
      expect(await shared.prune()).to.equal(2);
      expect(Number((await pool.query('SELECT count(*) AS n FROM login_failures')).rows[0].n)).to.equal(2);
    });
  });

  it('applies migrations once, also when several gateways start together', async () => {
    const pools = await Promise.all([1, 2, 3].map((i) => connectPostgres(server.settings, silentLogger(), `m${i}`)));
    for (const p of pools) await p.end();
    const versions = (await pool.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
    expect(versions).to.deep.equal(MIGRATIONS.map((_, i) => i + 1));
  });

  it('upgrades a database of an earlier schema in place: final rows stay final and prunable, unfinished ones are resumed', async () => {
    await server.psql('DROP DATABASE IF EXISTS upgrade');
    await server.psql('CREATE DATABASE upgrade');
    const settings = { ...server.settings, database: 'upgrade' };
    // The database as a gateway before the heap-only-updates migration left it: one transfer final, one still committing.
    const old = new pg.Pool({ host: settings.host, port: settings.port, database: settings.database, user: settings.user });
    await old.query('CREATE TABLE schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    for (let v = 1; v <= MIGRATIONS.indexOf(TRANSFER_LOG_HOT_UPDATES); v++) {
      await old.query(MIGRATIONS[v - 1]!);
      await old.query('INSERT INTO schema_migrations (version) VALUES ($1)', [v]);
    }
    const [done, busy] = [tx(), tx()];
    const insert = `INSERT INTO transfers (tx_id, owner_bank, owner_username, idempotency_key, to_bank, to_username, amount_minor,
        currency, state, decision, awaiting_banks, created_at_ms, updated_at_ms, owner_instance)
      VALUES ($1, 'BankA', 'alice', $2, 'BankB', 'bob', 5, 'EUR', $3, 'commit', $4, 1000, $5, 'g1')`;
    await old.query(insert, [done.id, done.idempotencyKey, 'committed', [], 2000]);
    await old.query(insert, [busy.id, busy.idempotencyKey, 'committing', ['BankB'], 3000]);
    await old.end();
    const upgraded = await connectPostgres(settings, silentLogger(), 'new');
    try {
      const versions = (await upgraded.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
      expect(versions).to.deep.equal(MIGRATIONS.map((_, i) => i + 1));
      const log = new PostgresTransferLog({ pool: upgraded, instanceId: 'g1', leaseMs: 60_000, groupCommit: DEFAULT_CONFIG.gateway, clock: systemClock });
      logs.push(log);
      expect((await log.unfinished()).map((t) => [t.tx.id, t.state, t.awaiting])).to.deep.equal([[busy.id, 'committing', ['BankB']]]);
      expect((await log.findById(done.id))?.state).to.equal('committed');
      // Final since 2000 (its last update): pruned by a cut-off after that, the unfinished one never.
      expect(await log.pruneFinal(1999, 10)).to.equal(0);
      expect(await log.pruneFinal(2001, 10)).to.equal(1);
      expect(await log.findById(busy.id)).to.not.equal(undefined);
    } finally {
      await upgraded.end();
    }
  });

  it('refuses a server that acknowledges commits before they are durable', async () => {
    await server.psql('ALTER SYSTEM SET synchronous_commit = off');
    await server.psql('SELECT pg_reload_conf()');
    try {
      let refused: Error | undefined;
      await eventually(async () => {
        try {
          const p = await connectPostgres(server.settings, silentLogger(), 'refuse');
          await p.end();
        } catch (err) {
          refused = err as Error;
        }
        return refused !== undefined;
      }, 10_000, 'the reloaded setting to be refused');
      expect(refused!.message).to.match(/synchronous_commit is off/);
    } finally {
      await server.psql('ALTER SYSTEM RESET synchronous_commit');
      await server.psql('SELECT pg_reload_conf()');
    }
  });
});

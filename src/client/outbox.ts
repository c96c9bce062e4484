import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { isName, isUuid } from '../core/ids.js';
import { isCurrency } from '../core/money.js';
import { sameAccount, sameTerms, type AccountRef } from '../core/transfer.js';
import { ClientFailure } from './failure.js';

// The client's durable offline outbox: every transfer the CLI makes is written here, with its
// idempotency key, BEFORE the first send, and every retry reuses that key. SQLite in the client data
// folder (file mode 0600), WAL + synchronous=FULL: a row is on disk before anything is sent.
//
// An entry is `pending` (waiting to be sent, or sent and waiting for its outcome), `needs_login`
// (waiting for its owner to log in), or final: `committed`, `failed` (the gateway's refusal),
// `cancelled` (by the user, only if never sent) or `expired` (never reached the gateway in time).
// `sent` says a CreateTransfer for the key may have reached the gateway; it is set durably before
// each send. A sent entry whose answer was lost is "in doubt": its outcome is asked for with
// GetTransfer, and it can never be cancelled.

export const OUTBOX_FILE = 'outbox.sqlite';

export type OutboxState = 'pending' | 'needs_login' | 'committed' | 'failed' | 'cancelled' | 'expired';

const FINAL_STATES: readonly OutboxState[] = ['committed', 'failed', 'cancelled', 'expired'];
const WAITING_STATES: readonly OutboxState[] = ['pending', 'needs_login'];

export function isFinalState(state: OutboxState): boolean {
  return FINAL_STATES.includes(state);
}

export interface OutboxError {
  readonly code: string;
  readonly reason: string;
  readonly message: string;
}

export interface OutboxEntry {
  /** Small local number for `queue show/cancel`. */
  readonly id: number;
  readonly idempotencyKey: string;
  readonly owner: AccountRef;
  readonly to: AccountRef;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly state: OutboxState;
  /** A CreateTransfer for this key may have reached the gateway. */
  readonly sent: boolean;
  readonly attempts: number;
  readonly createdAtMs: number;
  readonly lastAttemptAtMs: number | undefined;
  /** Why the last attempt did not finish the entry (e.g. gateway unreachable). */
  readonly lastError: OutboxError | undefined;
  readonly finishedAtMs: number | undefined;
  /** Set when committed. */
  readonly transactionId: string | undefined;
  /** Set when failed: the gateway's answer. */
  readonly failure: OutboxError | undefined;
}

export interface NewOutboxEntry {
  readonly idempotencyKey: string;
  readonly owner: AccountRef;
  readonly to: AccountRef;
  readonly amountMinor: bigint;
  readonly currency: string;
}

export interface OutboxLimits {
  /** Waiting entries at once. */
  readonly outboxMaxEntries: number;
  /** Finished entries kept. */
  readonly outboxHistoryMax: number;
  readonly outboxLeaseMs: number;
}

interface Row {
  id: bigint;
  idempotency_key: string;
  owner_bank: string;
  owner_username: string;
  to_bank: string;
  to_username: string;
  amount_minor: bigint;
  currency: string;
  state: OutboxState;
  sent: bigint;
  attempts: bigint;
  created_at_ms: bigint;
  last_attempt_at_ms: bigint | null;
  last_error: string | null;
  finished_at_ms: bigint | null;
  transaction_id: string | null;
  failure: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  idempotency_key TEXT NOT NULL UNIQUE,
  owner_bank TEXT NOT NULL,
  owner_username TEXT NOT NULL,
  to_bank TEXT NOT NULL,
  to_username TEXT NOT NULL,
  amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
  currency TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending','needs_login','committed','failed','cancelled','expired')),
  sent INTEGER NOT NULL DEFAULT 0 CHECK (sent IN (0, 1)),
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at_ms INTEGER NOT NULL,
  last_attempt_at_ms INTEGER,
  last_error TEXT,
  finished_at_ms INTEGER,
  transaction_id TEXT,
  failure TEXT,
  CHECK (state <> 'cancelled' OR sent = 0)
);
CREATE INDEX IF NOT EXISTS entries_waiting ON entries (owner_bank, owner_username, id) WHERE state IN ('pending','needs_login');
CREATE TABLE IF NOT EXISTS lease (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  holder TEXT NOT NULL,
  pid INTEGER NOT NULL,
  until_ms INTEGER NOT NULL
);
`;

export class Outbox {
  readonly file: string;
  private readonly db: Database.Database;
  /** Names this process as a lease holder. */
  private readonly holder = `${process.pid}:${randomUUID()}`;

  private constructor(file: string, private readonly limits: OutboxLimits) {
    this.file = file;
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.defaultSafeIntegers(true);
    this.db.exec(SCHEMA);
  }

  /** Opens (creating if needed) the outbox in `dir` (mode 0700), file mode 0600. */
  static open(dir: string, limits: OutboxLimits): Outbox {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, OUTBOX_FILE);
    // Create it owner-only before SQLite does; SQLite gives its -wal/-shm files the same mode.
    fs.closeSync(fs.openSync(file, 'a', 0o600));
    fs.chmodSync(file, 0o600);
    return new Outbox(file, limits);
  }

  /** Opens the outbox only if it exists (read-only commands never create it). */
  static openExisting(dir: string, limits: OutboxLimits): Outbox | undefined {
    return fs.existsSync(path.join(dir, OUTBOX_FILE)) ? Outbox.open(dir, limits) : undefined;
  }

  /**
   * Adds a payment (durably) before anything is sent. The same key with the same parameters returns
   * the existing entry; with other parameters it is refused. Refused with OUTBOX_FULL when
   * outboxMaxEntries payments are already waiting.
   */
  add(entry: NewOutboxEntry, nowMs: number): { entry: OutboxEntry; created: boolean } {
    assert(isUuid(entry.idempotencyKey), 'outbox: key must be a UUID');
    assert(isName(entry.owner.bank) && isName(entry.owner.username), 'outbox: invalid owner');
    assert(isName(entry.to.bank) && isName(entry.to.username), 'outbox: invalid recipient');
    assert(entry.amountMinor > 0n && isCurrency(entry.currency), 'outbox: invalid amount');
    return this.db.transaction(() => {
      const existing = this.byKey(entry.idempotencyKey);
      if (existing) {
        if (!sameAccount(existing.owner, entry.owner) || !sameTerms(existing, entry)) {
          throw new ClientFailure('ALREADY_EXISTS', 'IDEMPOTENCY_KEY_REUSED',
            `idempotency key ${entry.idempotencyKey} is already used by queued payment #${existing.id} with other parameters; use a new key`);
        }
        return { entry: existing, created: false };
      }
      const waiting = this.waitingCount();
      if (waiting >= this.limits.outboxMaxEntries) {
        throw new ClientFailure('RESOURCE_EXHAUSTED', 'OUTBOX_FULL',
          `the offline queue is full (${waiting} payments waiting, the limit is client.outboxMaxEntries=${this.limits.outboxMaxEntries}); `
            + 'nothing was sent: run `bin/client queue run` when the gateway is reachable, or cancel entries with `bin/client queue cancel ID`');
      }
      const info = this.db.prepare(`INSERT INTO entries (idempotency_key, owner_bank, owner_username, to_bank, to_username,
        amount_minor, currency, state, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)`).run(
        entry.idempotencyKey, entry.owner.bank, entry.owner.username, entry.to.bank, entry.to.username,
        entry.amountMinor, entry.currency, nowMs);
      const created = this.get(Number(info.lastInsertRowid));
      assert(created && created.state === 'pending' && !created.sent, 'outbox: inserted entry reads back wrong');
      return { entry: created, created: true };
    }).immediate();
  }

  get(id: number): OutboxEntry | undefined {
    const row = this.db.prepare('SELECT * FROM entries WHERE id = ?').get(id) as Row | undefined;
    return row && entryOf(row);
  }

  byKey(idempotencyKey: string): OutboxEntry | undefined {
    const row = this.db.prepare('SELECT * FROM entries WHERE idempotency_key = ?').get(idempotencyKey) as Row | undefined;
    return row && entryOf(row);
  }

  /** Every kept entry, oldest first. */
  list(): OutboxEntry[] {
    return (this.db.prepare('SELECT * FROM entries ORDER BY id').all() as Row[]).map(entryOf);
  }

  /** Waiting entries (pending or needs_login), oldest first; of one owner if given. */
  waiting(owner?: AccountRef): OutboxEntry[] {
    const rows = owner
      ? this.db.prepare(`SELECT * FROM entries WHERE state IN ('pending','needs_login') AND owner_bank = ? AND owner_username = ? ORDER BY id`)
        .all(owner.bank, owner.username)
      : this.db.prepare(`SELECT * FROM entries WHERE state IN ('pending','needs_login') ORDER BY id`).all();
    return (rows as Row[]).map(entryOf);
  }

  waitingCount(): number {
    const row = this.db.prepare(`SELECT count(*) AS n FROM entries WHERE state IN ('pending','needs_login')`).get() as { n: bigint };
    return Number(row.n);
  }

  /**
   * Durably records that a send is about to start (sent = 1, one more attempt). Returns false if the
   * entry is no longer pending (cancelled or finished by another process meanwhile): then do not send.
   */
  markSending(id: number, nowMs: number): boolean {
    const info = this.db.prepare(`UPDATE entries SET sent = 1, attempts = attempts + 1, last_attempt_at_ms = ?
      WHERE id = ? AND state = 'pending'`).run(nowMs, id);
    return info.changes === 1;
  }

  /** An attempt that did not finish the entry (unreachable, in doubt, still deciding). */
  recordAttempt(id: number, nowMs: number, error: OutboxError, countAttempt: boolean): void {
    this.db.prepare(`UPDATE entries SET attempts = attempts + ?, last_attempt_at_ms = ?, last_error = ?
      WHERE id = ? AND state IN ('pending','needs_login')`).run(countAttempt ? 1 : 0, nowMs, JSON.stringify(error), id);
  }

  /**
   * The gateway refused the token: keep the entry until its owner logs in. `sent` goes back to what
   * it was before this attempt (the refusal proves this attempt created nothing).
   */
  markNeedsLogin(id: number, nowMs: number, error: OutboxError, sentBefore?: boolean): void {
    this.db.prepare(`UPDATE entries SET state = 'needs_login', last_error = ?, last_attempt_at_ms = ?,
      sent = CASE WHEN ? IS NULL THEN sent ELSE ? END WHERE id = ? AND state IN ('pending','needs_login')`)
      .run(JSON.stringify(error), nowMs, sentBefore === undefined ? null : 1, sentBefore ? 1 : 0, id);
  }

  /** Entries of `owner` waiting for a login become pending again (a fresh session exists). */
  resumeAfterLogin(owner: AccountRef): number {
    return this.db.prepare(`UPDATE entries SET state = 'pending' WHERE state = 'needs_login' AND owner_bank = ? AND owner_username = ?`)
      .run(owner.bank, owner.username).changes;
  }

  /** Pending entries not of `owner` (or all, without an owner) wait for their owner's login. */
  holdForLogin(owner: AccountRef | undefined, error: OutboxError): number {
    const sql = owner
      ? `UPDATE entries SET state = 'needs_login', last_error = ? WHERE state = 'pending' AND NOT (owner_bank = ? AND owner_username = ?)`
      : `UPDATE entries SET state = 'needs_login', last_error = ? WHERE state = 'pending'`;
    const stmt = this.db.prepare(sql);
    return (owner ? stmt.run(JSON.stringify(error), owner.bank, owner.username) : stmt.run(JSON.stringify(error))).changes;
  }

  finishCommitted(id: number, nowMs: number, transactionId: string): OutboxEntry {
    return this.finish(id, nowMs, 'committed', { transactionId });
  }

  finishFailed(id: number, nowMs: number, failure: OutboxError): OutboxEntry {
    return this.finish(id, nowMs, 'failed', { failure });
  }

  finishExpired(id: number, nowMs: number, reason: OutboxError): OutboxEntry {
    return this.finish(id, nowMs, 'expired', { failure: reason });
  }

  /**
   * Cancels an entry that was never sent. A sent entry (its answer may have been lost) or a finished
   * one is refused with a ClientFailure saying why.
   */
  cancel(id: number, nowMs: number): OutboxEntry {
    return this.db.transaction(() => {
      const entry = this.get(id);
      if (!entry) throw new ClientFailure('NOT_FOUND', 'OUTBOX_ENTRY_NOT_FOUND', `no queued payment #${id}`);
      if (isFinalState(entry.state)) {
        throw new ClientFailure('FAILED_PRECONDITION', 'OUTBOX_NOT_CANCELLABLE', `payment #${id} is already ${entry.state}; nothing to cancel`);
      }
      if (entry.sent) {
        throw new ClientFailure('FAILED_PRECONDITION', 'OUTBOX_NOT_CANCELLABLE',
          `payment #${id} was already sent to the gateway (its answer was lost), so it cannot be cancelled; `
            + `its outcome is asked for with GetTransfer: run \`bin/client queue run\` or \`bin/client status ${entry.idempotencyKey}\``);
      }
      const info = this.db.prepare(`UPDATE entries SET state = 'cancelled', finished_at_ms = ?
        WHERE id = ? AND sent = 0 AND state IN ('pending','needs_login')`).run(nowMs, id);
      assert(info.changes === 1, `outbox: cancel of #${id} changed nothing inside its transaction`);
      this.prune();
      return this.get(id)!;
    }).immediate();
  }

  /**
   * Claims the right to send for this process. Granted if nobody holds it, the holder's claim has
   * lapsed, the holder process is gone, or it is us. Renew it before each attempt.
   */
  acquireLease(nowMs: number): { ok: true } | { ok: false; pid: number } {
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT holder, pid, until_ms FROM lease WHERE one = 1').get() as
        { holder: string; pid: bigint; until_ms: bigint } | undefined;
      if (row && row.holder !== this.holder && Number(row.until_ms) > nowMs && processAlive(Number(row.pid))) {
        return { ok: false as const, pid: Number(row.pid) };
      }
      this.db.prepare(`INSERT INTO lease (one, holder, pid, until_ms) VALUES (1, ?, ?, ?)
        ON CONFLICT (one) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, until_ms = excluded.until_ms`)
        .run(this.holder, process.pid, nowMs + this.limits.outboxLeaseMs);
      return { ok: true as const };
    }).immediate();
  }

  releaseLease(): void {
    this.db.prepare('DELETE FROM lease WHERE one = 1 AND holder = ?').run(this.holder);
  }

  close(): void {
    if (!this.db.open) return;
    try {
      this.releaseLease();
    } finally {
      this.db.close();
    }
  }

  private finish(id: number, nowMs: number, state: OutboxState, fields: { transactionId?: string; failure?: OutboxError }): OutboxEntry {
    assert(isFinalState(state) && state !== 'cancelled', `outbox: finish with ${state}`);
    return this.db.transaction(() => {
      const before = this.get(id);
      assert(before, `outbox: finish of unknown entry #${id}`);
      // Another process may have recorded the outcome already; a final outcome never changes.
      if (isFinalState(before.state)) return before;
      this.db.prepare(`UPDATE entries SET state = ?, finished_at_ms = ?, transaction_id = ?, failure = ? WHERE id = ?`)
        .run(state, nowMs, fields.transactionId ?? null, fields.failure ? JSON.stringify(fields.failure) : null, id);
      this.prune();
      const after = this.get(id)!;
      assert(after.state === state, `outbox: #${id} reads back ${after.state}, wrote ${state}`);
      return after;
    }).immediate();
  }

  /** Deletes the oldest finished entries beyond outboxHistoryMax. */
  private prune(): void {
    this.db.prepare(`DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE state IN ('committed','failed','cancelled','expired')
      ORDER BY finished_at_ms DESC, id DESC LIMIT -1 OFFSET ?)`).run(this.limits.outboxHistoryMax);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseError(text: string | null): OutboxError | undefined {
  if (text === null) return undefined;
  const v = JSON.parse(text) as OutboxError;
  assert(typeof v.code === 'string' && typeof v.reason === 'string' && typeof v.message === 'string', 'outbox: stored error has a bad shape');
  return v;
}

function entryOf(row: Row): OutboxEntry {
  assert([...FINAL_STATES, ...WAITING_STATES].includes(row.state), `outbox: unknown state ${row.state}`);
  const entry: OutboxEntry = {
    id: Number(row.id),
    idempotencyKey: row.idempotency_key,
    owner: { bank: row.owner_bank, username: row.owner_username },
    to: { bank: row.to_bank, username: row.to_username },
    amountMinor: row.amount_minor,
    currency: row.currency,
    state: row.state,
    sent: row.sent === 1n,
    attempts: Number(row.attempts),
    createdAtMs: Number(row.created_at_ms),
    lastAttemptAtMs: row.last_attempt_at_ms === null ? undefined : Number(row.last_attempt_at_ms),
    lastError: parseError(row.last_error),
    finishedAtMs: row.finished_at_ms === null ? undefined : Number(row.finished_at_ms),
    transactionId: row.transaction_id ?? undefined,
    failure: parseError(row.failure),
  };
  // Paired with the writes: a committed entry names its transaction, a cancelled one was never sent.
  assert(entry.state !== 'committed' || !!entry.transactionId, `outbox: committed #${entry.id} without a transaction id`);
  assert(entry.state !== 'cancelled' || !entry.sent, `outbox: cancelled #${entry.id} was sent`);
  assert(isFinalState(entry.state) === (entry.finishedAtMs !== undefined), `outbox: #${entry.id} finish time does not match ${entry.state}`);
  return entry;
}

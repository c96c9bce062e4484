import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { AssertionError, assert } from '../../core/assert.js';
import type { Clock } from '../../core/clock.js';
import { GroupCommit, type GroupCommitBounds, type GroupCommitObserver } from '../../core/group-commit.js';
import type { AccountRef } from '../../core/transfer.js';
import type { DurableState, LogRecord } from '../../coordinator/types.js';
import { RecordRefused, storedFailure, type OnDurable, type StoredTransfer, type TransferLog, type TransferLogReader } from './transfer-log.js';

// The embedded backend of the transfer log: one SQLite file in the gateway's data folder, one row
// per transfer, keyed by transaction id and unique per (owner, idempotency key). The coordinator's
// log records are applied to it as SQL updates; each update names the state it expects, so an
// out-of-order record is caught as a bug (pair assertion). synchronous=FULL: a transaction is on
// disk when COMMIT returns.
//
// Group commit (core/group-commit.ts): the records of many transfers are written in ONE SQLite
// transaction (one fsync), then each record's waiter is told that it is durable. SQLite is
// synchronous, so reads answer at once and a flush is done when flush() returns.

export const GATEWAY_DB_FILE = 'gateway.sqlite';
const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS transfers (
  tx_id            TEXT PRIMARY KEY,
  owner_bank       TEXT NOT NULL,
  owner_username   TEXT NOT NULL,
  idempotency_key  TEXT NOT NULL,
  to_bank          TEXT NOT NULL,
  to_username      TEXT NOT NULL,
  amount_minor     INTEGER NOT NULL CHECK (amount_minor > 0),
  currency         TEXT NOT NULL,
  state            TEXT NOT NULL CHECK (state IN ('preparing', 'committing', 'aborting', 'committed', 'aborted')),
  decision         TEXT CHECK (decision IN ('commit', 'abort')),
  failure_reason   TEXT,
  failure_message  TEXT,
  -- JSON array of banks whose Commit/Abort is not acknowledged yet.
  awaiting_banks   TEXT NOT NULL DEFAULT '[]',
  created_at_ms    INTEGER NOT NULL,
  updated_at_ms    INTEGER NOT NULL,
  UNIQUE (owner_bank, owner_username, idempotency_key),
  CHECK ((state = 'preparing') = (decision IS NULL)),
  CHECK ((decision = 'abort') = (failure_reason IS NOT NULL))
) STRICT;
-- Recovery and operators read only unfinished rows; this partial index stays small.
CREATE INDEX IF NOT EXISTS transfers_unfinished ON transfers (created_at_ms)
  WHERE state IN ('preparing', 'committing', 'aborting');
-- Idempotency retention prunes final rows by the time they became final, oldest first.
CREATE INDEX IF NOT EXISTS transfers_final ON transfers (updated_at_ms)
  WHERE state IN ('committed', 'aborted');
`;

const UNFINISHED = `state IN ('preparing', 'committing', 'aborting')`;
const FINAL = `state IN ('committed', 'aborted')`;

interface Row {
  tx_id: string;
  owner_bank: string;
  owner_username: string;
  idempotency_key: string;
  to_bank: string;
  to_username: string;
  amount_minor: bigint;
  currency: string;
  state: DurableState;
  decision: 'commit' | 'abort' | null;
  failure_reason: string | null;
  failure_message: string | null;
  awaiting_banks: string;
  created_at_ms: bigint;
  updated_at_ms: bigint;
}

/** Bounds of the group commit (config gateway.persist*). */
export interface GroupCommitLimits {
  /** Records written in one transaction at most; a full batch is written at once. */
  readonly persistBatchMaxRecords: number;
  /** How long the first queued record waits for company; 0 = until the end of this event-loop turn. */
  readonly persistBatchWindowMs: number;
  /** How long a record nobody waits for may stay queued when no urgent record takes it along. */
  readonly persistBackgroundDelayMs: number;
}

/** The group-commit bounds of the transfer log, from config gateway.persist*. */
export function logGroupCommitBounds(limits: GroupCommitLimits): GroupCommitBounds {
  return { maxItems: limits.persistBatchMaxRecords, windowMs: limits.persistBatchWindowMs, backgroundDelayMs: limits.persistBackgroundDelayMs };
}

/** A store that writes: its group-commit bounds (config gateway.persist*) and the clock of its flushes. */
export interface WritableStoreOptions {
  readonly groupCommit: GroupCommitLimits;
  readonly clock: Clock;
  /** Told of each group commit (the gateway's metrics). */
  readonly groupCommitObserver?: GroupCommitObserver;
  /**
   * An already open database to use instead of opening `file` (the simulator's in-memory
   * database); the store owns it from now on and closes it like its own.
   */
  readonly database?: Database.Database;
}

interface Queued {
  readonly record: LogRecord;
  readonly nowMs: number;
}

export class SqliteTransferLog implements TransferLog {
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly applyInTx: (record: LogRecord, nowMs: number) => RecordRefused | undefined;
  /** Undefined for a read-only store (it never writes a record). */
  private readonly group: GroupCommit<Queued, RecordRefused | undefined> | undefined;

  /** `readonly`: an operator's view of a running gateway's file (never creates or changes it). */
  constructor(
    readonly file: string,
    options: WritableStoreOptions | { readonly readonly: true },
  ) {
    const readonly = 'readonly' in options;
    this.db = readonly ? new Database(file, { readonly: true, fileMustExist: true }) : options.database ?? new Database(file);
    if (!readonly) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.pragma('foreign_keys = ON');
    }
    this.db.pragma('busy_timeout = 5000');
    this.db.defaultSafeIntegers(true);
    const version = Number(this.db.pragma('user_version', { simple: true }));
    assert(version === 0 || version === SCHEMA_VERSION, `gateway store ${file}: unknown schema version ${version}`);
    if (!readonly) {
      this.db.exec(SCHEMA);
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    } else {
      assert(version === SCHEMA_VERSION, `gateway store ${file} has no tables yet`);
    }
    this.stmts = {
      insert: this.db.prepare(`INSERT INTO transfers
        (tx_id, owner_bank, owner_username, idempotency_key, to_bank, to_username, amount_minor, currency,
         state, created_at_ms, updated_at_ms)
        VALUES (@txId, @ownerBank, @ownerUsername, @key, @toBank, @toUsername, @amount, @currency,
         'preparing', @createdAtMs, @nowMs)
        ON CONFLICT (owner_bank, owner_username, idempotency_key) DO NOTHING`),
      decide: this.db.prepare(`UPDATE transfers SET state = @state, decision = @decision,
        failure_reason = @reason, failure_message = @message, awaiting_banks = @awaiting, updated_at_ms = @nowMs
        WHERE tx_id = @txId AND state = 'preparing'`),
      // One statement: drop the bank from the awaited list, only if it is awaited there.
      ack: this.db.prepare(`UPDATE transfers SET updated_at_ms = @nowMs, awaiting_banks =
          (SELECT json_group_array(value) FROM json_each(transfers.awaiting_banks) WHERE value != @bank)
        WHERE tx_id = @txId AND state IN ('committing', 'aborting')
          AND EXISTS (SELECT 1 FROM json_each(transfers.awaiting_banks) WHERE value = @bank)`),
      complete: this.db.prepare(`UPDATE transfers SET state = @state, decision = @decision,
        failure_reason = @reason, failure_message = @message, awaiting_banks = '[]', updated_at_ms = @nowMs
        WHERE tx_id = @txId AND state = @from`),
      byId: this.db.prepare(`SELECT * FROM transfers WHERE tx_id = ?`),
      byKey: this.db.prepare(`SELECT * FROM transfers WHERE owner_bank = ? AND owner_username = ? AND idempotency_key = ?`),
      unfinished: this.db.prepare(`SELECT * FROM transfers WHERE ${UNFINISHED} ORDER BY created_at_ms`),
      unfinishedPage: this.db.prepare(`SELECT * FROM transfers WHERE ${UNFINISHED} ORDER BY created_at_ms LIMIT ?`),
      pruneFinal: this.db.prepare(`DELETE FROM transfers WHERE tx_id IN
        (SELECT tx_id FROM transfers WHERE ${FINAL} AND updated_at_ms < ? ORDER BY updated_at_ms LIMIT ?)`),
    };
    this.applyInTx = this.db.transaction((record: LogRecord, nowMs: number) => this.apply(record, nowMs));
    const writeAll = this.db.transaction((batch: readonly Queued[]) => {
      // An ack followed by its transfer's completion in the same batch is implied by it.
      let completed: Set<string> | undefined;
      for (const q of batch) if (q.record.type === 'completed') (completed ??= new Set()).add(q.record.txId);
      return batch.map((q) => (q.record.type === 'ack' && completed?.has(q.record.txId) ? undefined : this.apply(q.record, q.nowMs)));
    });
    this.group = readonly ? undefined : new GroupCommit<Queued, RecordRefused | undefined>(
      (batch) => writeAll(batch), logGroupCommitBounds(options.groupCommit), options.clock, options.groupCommitObserver);
  }

  /**
   * Writes one coordinator record durably (returns after fsync), after the records queued before
   * it. The begin record is one INSERT: the idempotency key and the transfer are claimed together,
   * before any prepare is sent.
   */
  append(record: LogRecord, nowMs: number): RecordRefused | undefined {
    // SQLite writes synchronously: what was queued is written when flush() returns (nothing to await).
    void this.flush();
    return this.applyInTx(record, nowMs);
  }

  enqueue(record: LogRecord, nowMs: number, onDurable?: OnDurable, urgent = true): void {
    assert(this.db.open, 'gateway store is closed');
    assert(this.group, 'gateway store is read-only');
    this.group.submit({ record, nowMs }, (err, refused) => onDurable?.(err ?? refused), urgent);
  }

  onFlushed(listener: () => void): void {
    this.group?.onFlushed(listener);
  }

  /** Records queued and not yet written. */
  get queued(): number {
    return this.group?.queued ?? 0;
  }

  /** Writes every record queued so far, synchronously (SQLite): done when this returns. */
  flush(): Promise<void> {
    return this.group?.flush() ?? Promise.resolve();
  }

  /** Applies one record; a begin whose key an earlier transfer holds is refused (nothing written). */
  private apply(record: LogRecord, nowMs: number): RecordRefused | undefined {
    switch (record.type) {
      case 'begin': {
        const { tx } = record;
        const info = this.stmts.insert.run({
          txId: tx.id,
          ownerBank: tx.from.bank,
          ownerUsername: tx.from.username,
          key: tx.idempotencyKey,
          toBank: tx.to.bank,
          toUsername: tx.to.username,
          amount: tx.amountMinor,
          currency: tx.currency,
          createdAtMs: tx.createdAtMs,
          nowMs,
        });
        if (info.changes === 0) {
          return new RecordRefused('key_taken', tx.id, `idempotency key ${tx.idempotencyKey} of ${tx.from.username}@${tx.from.bank} belongs to another transfer`);
        }
        return undefined;
      }
      case 'decision': {
        const failure = record.decision === 'abort' ? record.failure : undefined;
        const info = this.stmts.decide.run({
          txId: record.txId,
          state: record.decision === 'commit' ? 'committing' : 'aborting',
          decision: record.decision,
          reason: failure?.reason ?? null,
          message: failure?.message ?? null,
          awaiting: JSON.stringify(record.awaiting),
          nowMs,
        });
        expectOne(info.changes, record);
        return;
      }
      case 'ack': {
        // Matches only a decided transfer that awaits this bank (pair assertion via expectOne).
        const info = this.stmts.ack.run({ txId: record.txId, bank: record.bank, nowMs });
        expectOne(info.changes, record);
        return;
      }
      case 'completed': {
        const { outcome } = record;
        const committed = outcome.kind === 'committed';
        const info = this.stmts.complete.run({
          txId: record.txId,
          state: committed ? 'committed' : 'aborted',
          decision: committed ? 'commit' : 'abort',
          reason: committed ? null : outcome.failure.reason,
          message: committed ? null : outcome.failure.message,
          from: committed ? 'committing' : 'aborting',
          nowMs,
        });
        expectOne(info.changes, record);
        return;
      }
      default:
        throw new AssertionError(`store: unknown record ${JSON.stringify((record as { type: unknown }).type)}`);
    }
  }

  findByKey(owner: AccountRef, idempotencyKey: string): StoredTransfer | undefined {
    const row = this.stmts.byKey.get(owner.bank, owner.username, idempotencyKey) as Row | undefined;
    return row && toStored(row);
  }

  findById(txId: string): StoredTransfer | undefined {
    const row = this.rowById(txId);
    return row && toStored(row);
  }

  /** Every transfer not yet final, oldest first: the input of recovery. */
  unfinished(): StoredTransfer[] {
    return (this.stmts.unfinished.all() as Row[]).map(toStored);
  }

  /** Unfinished (undecided or in-doubt) transfers for operators, oldest first, at most `limit`. */
  listUnfinished(limit: number): StoredTransfer[] {
    assert(Number.isInteger(limit) && limit > 0, 'listUnfinished: limit must be a positive integer');
    return (this.stmts.unfinishedPage.all(limit) as Row[]).map(toStored);
  }

  /**
   * Deletes at most `limit` final (committed or aborted) transfers that became final before
   * `beforeMs`, oldest first, in one short transaction; returns how many. Unfinished transfers are
   * never deleted: their keys and decisions are needed until phase 2 is acknowledged.
   */
  pruneFinal(beforeMs: number, limit: number): number {
    assert(Number.isInteger(limit) && limit > 0, 'pruneFinal: limit must be a positive integer');
    return this.stmts.pruneFinal.run(beforeMs, limit).changes;
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  /** Writes what is still queued, then closes. */
  close(): void {
    if (!this.db.open) return;
    try {
      // Synchronous (SQLite): done when it returns, before the database closes.
      void this.flush();
    } finally {
      this.db.close();
    }
  }

  /**
   * Closes the file at once, dropping what is queued and not yet written, as a crash would
   * (committed SQLite transactions are durable; the queue is lost). For the simulator.
   */
  crash(): void {
    this.group?.discard();
    if (this.db.open) this.db.close();
  }

  private rowById(txId: string): Row | undefined {
    return this.stmts.byId.get(txId) as Row | undefined;
  }
}

/** Opens an existing gateway store read-only (operator commands next to a running gateway). */
export function openSqliteLogReadOnly(dataDir: string): TransferLogReader {
  return new SqliteTransferLog(path.join(dataDir, GATEWAY_DB_FILE), { readonly: true });
}

/** Opens (creating if needed) the gateway store in `dataDir`. */
export function openSqliteLog(dataDir: string, options: WritableStoreOptions): SqliteTransferLog {
  fs.mkdirSync(dataDir, { recursive: true });
  return new SqliteTransferLog(path.join(dataDir, GATEWAY_DB_FILE), options);
}

function expectOne(changes: number, record: LogRecord): void {
  const id = record.type === 'begin' ? record.tx.id : record.txId;
  assert(changes === 1, `store: ${record.type} record for ${id} did not match its expected prior state`);
}

function parseAwaiting(text: string): string[] {
  const v: unknown = JSON.parse(text);
  assert(Array.isArray(v) && v.every((b) => typeof b === 'string'), `store: bad awaiting_banks ${text}`);
  return v;
}

function toStored(row: Row): StoredTransfer {
  const failure = storedFailure(row);
  const awaiting = parseAwaiting(row.awaiting_banks);
  const createdAtMs = Number(row.created_at_ms);
  return {
    tx: {
      id: row.tx_id,
      idempotencyKey: row.idempotency_key,
      from: { bank: row.owner_bank, username: row.owner_username },
      to: { bank: row.to_bank, username: row.to_username },
      amountMinor: row.amount_minor,
      currency: row.currency,
      createdAtMs,
    },
    state: row.state,
    ...(failure ? { failure } : {}),
    awaiting,
    updatedAtMs: Number(row.updated_at_ms),
  };
}

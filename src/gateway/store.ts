import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { AssertionError, assert } from '../core/assert.js';
import type { Clock, Timer } from '../core/clock.js';
import type { Failure } from '../core/errors.js';
import { isReason } from '../core/reasons.js';
import type { AccountRef } from '../core/transfer.js';
import type { DurableState, DurableTx, LogRecord } from '../coordinator/types.js';

// The gateway's durable state: one row per transfer, keyed by transaction id and unique per
// (owner, idempotency key). The coordinator's log records are applied to it as SQL updates; each
// update names the state it expects, so an out-of-order record is caught as a bug (pair assertion).
// synchronous=FULL: append() returns only when the write is on disk, which is what lets the
// driver send a Commit right after persisting the decision.
//
// Group commit: enqueue() collects the records of many transfers and writes them in ONE SQLite
// transaction (one fsync) at the end of the event-loop turn (or after persistBatchWindowMs, or at
// once when persistBatchMaxRecords are queued), then tells each record's waiter that it is
// durable. The driver waits for that before performing the effects that follow the record, so
// "persist, then send" holds per record exactly as with append().

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

/** Bounds of the group commit (config gateway.persistBatch*). */
export interface GroupCommitLimits {
  /** Records written in one transaction at most; a full batch is written at once. */
  readonly persistBatchMaxRecords: number;
  /** How long the first queued record waits for company; 0 = until the end of this event-loop turn. */
  readonly persistBatchWindowMs: number;
  /**
   * How long a record nobody waits for (urgent = false) may stay queued when no urgent record
   * comes along to take it into a group commit.
   */
  readonly persistBackgroundDelayMs: number;
}

/** A store that writes: its group-commit bounds (config gateway.persist*) and the clock of its flushes. */
export interface WritableStoreOptions {
  readonly groupCommit: GroupCommitLimits;
  readonly clock: Clock;
}

/** Told when a queued record is durable (no error) or could not be written (error; nothing of it is on disk). */
export type OnDurable = (err?: Error) => void;

interface Queued {
  readonly record: LogRecord;
  readonly nowMs: number;
  readonly onDurable: OnDurable | undefined;
}

/** A stored transfer: its durable coordinator state plus bookkeeping. */
export interface StoredTransfer extends DurableTx {
  readonly updatedAtMs: number;
}

export class GatewayStore {
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly applyInTx: (record: LogRecord, nowMs: number) => void;
  private readonly applyAllInTx: (batch: readonly Queued[]) => void;
  private readonly groupCommit: GroupCommitLimits;
  private readonly clock: Clock | undefined;
  private queue: Queued[] = [];
  private flushScheduled: Timer | undefined;
  /** Set when only background records are queued: a later flush. */
  private backgroundFlush: Timer | undefined;
  private readonly flushedListeners: (() => void)[] = [];

  /** `readonly`: an operator's view of a running gateway's file (never creates or changes it). */
  constructor(
    readonly file: string,
    options: WritableStoreOptions | { readonly readonly: true },
  ) {
    const readonly = 'readonly' in options;
    // A read-only store never queues a record: its bounds are never used.
    this.groupCommit = 'readonly' in options ? { persistBatchMaxRecords: 1, persistBatchWindowMs: 0, persistBackgroundDelayMs: 0 } : options.groupCommit;
    this.clock = 'readonly' in options ? undefined : options.clock;
    assert(this.groupCommit.persistBatchMaxRecords > 0 && this.groupCommit.persistBatchWindowMs >= 0,
      'gateway store: need persistBatchMaxRecords > 0 and persistBatchWindowMs >= 0');
    this.db = new Database(file, readonly ? { readonly: true, fileMustExist: true } : {});
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
         'preparing', @createdAtMs, @nowMs)`),
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
    this.applyAllInTx = this.db.transaction((batch: readonly Queued[]) => {
      // An ack followed by its transfer's completion in the same batch is implied by it.
      let completed: Set<string> | undefined;
      for (const q of batch) if (q.record.type === 'completed') (completed ??= new Set()).add(q.record.txId);
      for (const q of batch) {
        if (q.record.type === 'ack' && completed?.has(q.record.txId)) continue;
        this.apply(q.record, q.nowMs);
      }
    });
  }

  /**
   * Writes one coordinator record durably (returns after fsync). The begin record is one INSERT:
   * the idempotency key and the transfer are claimed together, before any prepare is sent.
   * Records queued earlier are written first (in order).
   */
  append(record: LogRecord, nowMs: number): void {
    this.flush();
    this.applyInTx(record, nowMs);
  }

  /**
   * Queues a record for the next group commit; `onDurable` runs once the transaction holding it
   * is on disk (or failed). Records are written in the order they were queued. A record that is
   * not `urgent` (nobody waits for it) rides along with the next urgent one, or is written
   * persistBackgroundDelayMs later: it does not cost a group commit of its own.
   */
  enqueue(record: LogRecord, nowMs: number, onDurable?: OnDurable, urgent = true): void {
    assert(this.db.open, 'gateway store is closed');
    const clock = this.clock;
    assert(clock, 'gateway store is read-only');
    this.queue.push({ record, nowMs, onDurable });
    if (this.queue.length >= this.groupCommit.persistBatchMaxRecords) {
      this.flush();
      return;
    }
    if (this.flushScheduled !== undefined) return;
    if (!urgent) {
      this.backgroundFlush ??= clock.setTimer(this.groupCommit.persistBackgroundDelayMs, () => {
        this.backgroundFlush = undefined;
        this.flush();
      });
      return;
    }
    const flush = () => {
      this.flushScheduled = undefined;
      this.flush();
    };
    this.flushScheduled = clock.setTimer(this.groupCommit.persistBatchWindowMs, flush);
  }

  /**
   * Runs `listener` after each group commit, once every waiter of it has run (the driver sends the
   * bank calls those waiters queued right then, instead of one event-loop turn later).
   */
  onFlushed(listener: () => void): void {
    this.flushedListeners.push(listener);
  }

  /** Records queued and not yet written. */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Writes every record queued so far now, in one transaction (or several of at most
   * persistBatchMaxRecords), then tells their waiters. Should a shared transaction fail, each of
   * its records is retried alone, so that one bad record fails only its own waiter. Records that
   * waiters queue meanwhile go into the next group commit.
   */
  flush(): void {
    this.cancelScheduledFlush();
    const pending = this.queue;
    this.queue = [];
    let thrown: unknown;
    for (let start = 0; start < pending.length; start += this.groupCommit.persistBatchMaxRecords) {
      const batch = pending.slice(start, start + this.groupCommit.persistBatchMaxRecords);
      let results: (Error | undefined)[];
      try {
        this.applyAllInTx(batch);
        results = batch.map(() => undefined);
      } catch {
        results = batch.map((q) => {
          try {
            this.applyInTx(q.record, q.nowMs);
            return undefined;
          } catch (err) {
            return err instanceof Error ? err : new Error(String(err));
          }
        });
      }
      // Waiters run after the whole batch is durable; one that throws (an assertion) must not
      // keep the others from hearing about their records.
      for (let i = 0; i < batch.length; i++) {
        try {
          batch[i]!.onDurable?.(results[i]);
        } catch (err) {
          thrown ??= err;
        }
      }
    }
    if (thrown !== undefined) throw thrown;
    if (pending.length > 0) for (const listener of this.flushedListeners) listener();
  }

  private cancelScheduledFlush(): void {
    this.backgroundFlush?.cancel();
    this.backgroundFlush = undefined;
    this.flushScheduled?.cancel();
    this.flushScheduled = undefined;
  }

  private apply(record: LogRecord, nowMs: number): void {
    switch (record.type) {
      case 'begin': {
        const { tx } = record;
        this.stmts.insert.run({
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
        return;
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
      this.flush();
    } finally {
      this.db.close();
    }
  }

  /**
   * Closes the file at once, dropping what is queued and not yet written, as a crash would
   * (committed SQLite transactions are durable; the queue is lost). For the simulator.
   */
  crash(): void {
    this.cancelScheduledFlush();
    this.queue = [];
    if (this.db.open) this.db.close();
  }

  private rowById(txId: string): Row | undefined {
    return this.stmts.byId.get(txId) as Row | undefined;
  }
}

/** Opens an existing gateway store read-only (operator commands next to a running gateway). */
export function openGatewayStoreReadOnly(dataDir: string): GatewayStore {
  return new GatewayStore(path.join(dataDir, GATEWAY_DB_FILE), { readonly: true });
}

/** Opens (creating if needed) the gateway store in `dataDir`. */
export function openGatewayStore(dataDir: string, options: WritableStoreOptions): GatewayStore {
  fs.mkdirSync(dataDir, { recursive: true });
  return new GatewayStore(path.join(dataDir, GATEWAY_DB_FILE), options);
}

function expectOne(changes: number, record: LogRecord): void {
  const id = record.type === 'begin' ? record.tx.id : record.txId;
  assert(changes === 1, `store: ${record.type} record for ${id} did not match its expected prior state`);
}

function parseAwaiting(text: string): string[] {
  const v: unknown = JSON.parse(text);
  assert(Array.isArray(v) && v.every((b) => typeof b === 'string'), `store: bad awaiting_banks ${text}`);
  return v as string[];
}

function toStored(row: Row): StoredTransfer {
  // Read-side pair of the CHECK constraints: the row must describe a coherent coordinator state.
  const decided = row.state !== 'preparing';
  assert(decided === (row.decision !== null), `store: transfer ${row.tx_id} is ${row.state} with decision ${row.decision}`);
  let failure: Failure | undefined;
  if (row.decision === 'abort') {
    assert(row.failure_reason !== null, `store: aborted transfer ${row.tx_id} has no reason`);
    failure = {
      reason: isReason(row.failure_reason) ? row.failure_reason : 'TRANSACTION_ABORTED',
      message: row.failure_message ?? row.failure_reason,
    };
  }
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

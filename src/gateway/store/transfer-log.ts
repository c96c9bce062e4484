import { assert } from '../../core/assert.js';
import type { Failure } from '../../core/errors.js';
import { isReason } from '../../core/reasons.js';
import type { AccountRef } from '../../core/transfer.js';
import type { DurableState, DurableTx, LogRecord } from '../../coordinator/types.js';

// The gateway's durable coordinator log, as the driver, the engine, the coordinator service,
// recovery and the admin commands see it. Two backends implement it: SQLite (store/sqlite.ts, the
// embedded default) and PostgreSQL (store/postgres.ts, shared by several gateways). Callers
// always `await` the reads: a backend may answer at once (SQLite) or after a round trip.

export type Awaitable<T> = T | Promise<T>;

/** Told when a queued record is durable (no error) or could not be written (error; nothing of it is on disk). */
export type OnDurable = (err?: Error) => void;

/** A stored transfer: its durable coordinator state plus bookkeeping. */
export interface StoredTransfer extends DurableTx {
  readonly updatedAtMs: number;
}

/** The decision columns of a stored row, as both backends keep them. */
export interface DecisionColumns {
  readonly tx_id: string;
  readonly state: DurableState;
  readonly decision: 'commit' | 'abort' | null;
  readonly failure_reason: string | null;
  readonly failure_message: string | null;
}

/**
 * The failure of a row decided abort (undefined otherwise), checking on the way the read-side pair
 * of the schema's CHECK constraints: the row must describe a coherent coordinator state.
 */
export function storedFailure(row: DecisionColumns): Failure | undefined {
  const decided = row.state !== 'preparing';
  assert(decided === (row.decision !== null), `store: transfer ${row.tx_id} is ${row.state} with decision ${row.decision}`);
  if (row.decision !== 'abort') return undefined;
  assert(row.failure_reason !== null, `store: aborted transfer ${row.tx_id} has no reason`);
  return {
    reason: isReason(row.failure_reason) ? row.failure_reason : 'TRANSACTION_ABORTED',
    message: row.failure_message ?? row.failure_reason,
  };
}

/** What the driver writes through: records in group commits. */
export interface TransferLogWriter {
  /**
   * Queues the record for the next group commit; `onDurable` runs once it is on disk (or with the
   * error if it could not be written). Records are written in the order queued. A record that is
   * not `urgent` (nobody waits for it) rides along with the next urgent one.
   */
  enqueue(record: LogRecord, nowMs: number, onDurable?: OnDurable, urgent?: boolean): void;
  /** Runs `listener` after each group commit, once its waiters have run. */
  onFlushed(listener: () => void): void;
}

export interface TransferLog extends TransferLogWriter {
  /** Writes every queued record now; resolves once they are durable. */
  flush(): Promise<void>;
  findByKey(owner: AccountRef, idempotencyKey: string): Awaitable<StoredTransfer | undefined>;
  findById(txId: string): Awaitable<StoredTransfer | undefined>;
  /** Every transfer not yet final, oldest first: the input of recovery. */
  unfinished(): Awaitable<StoredTransfer[]>;
  /** Unfinished (undecided or in-doubt) transfers for operators, oldest first, at most `limit`. */
  listUnfinished(limit: number): Awaitable<StoredTransfer[]>;
  /**
   * Deletes at most `limit` final transfers that became final before `beforeMs`, oldest first, in
   * one short transaction; returns how many. Unfinished transfers are never deleted.
   */
  pruneFinal(beforeMs: number, limit: number): Awaitable<number>;
  readonly isOpen: boolean;
  /** Present when several gateways may share this log (PostgreSQL). */
  readonly leases?: TransferLeases;
  /** Writes what is still queued, then closes. */
  close(): Awaitable<void>;
}

/** A read-only view for operator commands next to a running gateway. */
export type TransferLogReader = Pick<TransferLog, 'listUnfinished' | 'findById' | 'close'>;

// Several gateways share the PostgreSQL log. Two refusals are then expected outcomes, not bugs
// (the SQLite backend, with one gateway, never gives them):

export type RefusalKind =
  /** A begin record: another transfer of this owner already holds the idempotency key. */
  | 'key_taken'
  /** The transfer is owned by another gateway now (its epoch moved on): stop driving it. */
  | 'fenced';

/** Given to a record's waiter (OnDurable) when the shared log refused it; nothing of it was written. */
export class RecordRefused extends Error {
  override readonly name = 'RecordRefused';
  constructor(
    readonly kind: RefusalKind,
    readonly txId: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Ownership of unfinished transfers when several gateways share the log: each names its owner
 * instance, an epoch and a lease expiry (the database's clock). The owner renews its leases; any
 * instance takes over expired ones, which bumps their epoch so that the old owner's writes are
 * refused (RecordRefused 'fenced').
 */
export interface TransferLeases {
  /** This gateway's instance id (the owner it writes). */
  readonly instanceId: string;
  /** Extends the lease of every unfinished transfer this instance owns, in one statement; returns how many. */
  renew(): Promise<number>;
  /** Claims at most `limit` unfinished transfers whose lease expired (epoch + 1) and returns them, oldest first. */
  takeOverExpired(limit: number): Promise<StoredTransfer[]>;
  /**
   * Stops renewing this transfer's lease (its run here ended without finishing it): the lease
   * lapses and a takeover drives it, as after a crash. Records for it are refused 'fenced' from now.
   */
  release(txId: string): void;
}

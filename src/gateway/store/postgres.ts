import type pg from 'pg';
import { AssertionError, assert } from '../../core/assert.js';
import type { Clock } from '../../core/clock.js';
import type { Failure } from '../../core/errors.js';
import { GroupCommit, type GroupCommitObserver } from '../../core/group-commit.js';
import type { AccountRef } from '../../core/transfer.js';
import type { DurableState, LogRecord } from '../../coordinator/types.js';
import { storeUnavailable } from '../shared/revocations.js';
import { logGroupCommitBounds, type GroupCommitLimits } from './sqlite.js';
import {
  RecordRefused,
  storedFailure,
  type OnDurable,
  type StoredTransfer,
  type TransferLeases,
  type TransferLog,
} from './transfer-log.js';

// The shared backend of the transfer log: one PostgreSQL table that several gateways write.
// - Group commit: the records of one batch go out as ONE statement (data-modifying CTEs over
//   unnest() arrays: one INSERT for the begins, one UPDATE per other record kind), so a batch is
//   one round trip and one commit (synchronous_commit = on: durable when it returns). The
//   statements of one batch touch disjoint transfers (an ack riding with its own transfer's
//   completion is dropped, as the completion implies it), so they need not see each other.
// - Idempotency is global: the begin INSERT claims the owner's key with ON CONFLICT DO NOTHING;
//   a begin that claimed nothing is refused 'key_taken' (another request, maybe at another
//   gateway, owns that key).
// - The decision is a compare-and-set: preparing -> committing|aborting only while the row is
//   still preparing AND still ours at the epoch we hold. Every later write names the epoch too;
//   a write whose epoch moved on (another gateway took the transfer over) is refused 'fenced'.
// - Leases use the database's clock (clock_timestamp()), never a gateway's.
// The event loop never waits for PostgreSQL: every call is asynchronous.

/** Not final yet: set at the completion, so index predicates never depend on the changing `state`. */
const UNFINISHED = 'finished_at_ms IS NULL';
const FINAL = 'finished_at_ms IS NOT NULL';

/**
 * The shared log's first schema. It and TRANSFER_LOG_HOT_UPDATES are migrations, each applied
 * once, in the order store/postgres-connect.ts gives them.
 */
export const TRANSFER_LOG_SCHEMA = `CREATE TABLE transfers (
    tx_id            text PRIMARY KEY,
    owner_bank       text NOT NULL,
    owner_username   text NOT NULL,
    idempotency_key  text NOT NULL,
    to_bank          text NOT NULL,
    to_username      text NOT NULL,
    amount_minor     bigint NOT NULL CHECK (amount_minor > 0),
    currency         text NOT NULL,
    state            text NOT NULL CHECK (state IN ('preparing', 'committing', 'aborting', 'committed', 'aborted')),
    decision         text CHECK (decision IN ('commit', 'abort')),
    failure_reason   text,
    failure_message  text,
    -- Banks whose Commit/Abort is not acknowledged yet.
    awaiting_banks   text[] NOT NULL DEFAULT '{}',
    created_at_ms    bigint NOT NULL,
    updated_at_ms    bigint NOT NULL,
    -- Ownership: the gateway instance driving it, the fencing epoch, and until when its lease holds.
    owner_instance   text NOT NULL,
    epoch            bigint NOT NULL DEFAULT 1,
    lease_expires_at timestamptz,
    UNIQUE (owner_bank, owner_username, idempotency_key),
    CHECK ((state = 'preparing') = (decision IS NULL)),
    CHECK ((decision = 'abort') = (failure_reason IS NOT NULL))
  );
  CREATE INDEX transfers_unfinished ON transfers (created_at_ms) WHERE state IN ('preparing', 'committing', 'aborting');
  CREATE INDEX transfers_final ON transfers (updated_at_ms) WHERE state IN ('committed', 'aborted');
  CREATE INDEX transfers_leases ON transfers (lease_expires_at) WHERE state IN ('preparing', 'committing', 'aborting');
  CREATE INDEX transfers_owned ON transfers (owner_instance) WHERE state IN ('preparing', 'committing', 'aborting');`;

/**
 * Heap-only updates: the decision, every ack and every lease renewal change no indexed column
 * (nor one an index predicate reads), so PostgreSQL rewrites the row in its page and touches no
 * index: measured under the bench's load, 6.0 -> 2.6 WAL records per log record and 1.27 -> 0.71 ms
 * per group-commit statement. Only the completion (finished_at_ms set) moves index entries.
 * `state` stays the truth; finished_at_ms marks when it became final (the CHECK keeps them
 * together). fillfactor leaves room in each page for those updates.
 */
export const TRANSFER_LOG_HOT_UPDATES = `ALTER TABLE transfers ADD COLUMN finished_at_ms bigint;
  UPDATE transfers SET finished_at_ms = updated_at_ms WHERE state IN ('committed', 'aborted');
  ALTER TABLE transfers ADD CONSTRAINT transfers_finished_when_final
    CHECK ((finished_at_ms IS NOT NULL) = (state IN ('committed', 'aborted')));
  DROP INDEX transfers_unfinished, transfers_final, transfers_leases, transfers_owned;
  CREATE INDEX transfers_unfinished ON transfers (created_at_ms) WHERE ${UNFINISHED};
  CREATE INDEX transfers_finished ON transfers (finished_at_ms) WHERE ${FINAL};
  ALTER TABLE transfers SET (fillfactor = 75);`;

export interface PostgresLogOptions {
  readonly pool: pg.Pool;
  readonly instanceId: string;
  /** An owner that has not renewed for this long loses its transfers to another instance. */
  readonly leaseMs: number;
  readonly groupCommit: GroupCommitLimits;
  readonly clock: Clock;
  /** Told of each group commit (the gateway's metrics). */
  readonly groupCommitObserver?: GroupCommitObserver;
}

interface Queued {
  readonly record: LogRecord;
  readonly nowMs: number;
}

/** A queued record with the epoch this instance holds its transfer at when the batch is written. */
interface Held extends Queued {
  readonly epoch: number;
}

/** A record's fate in its batch: written, refused, or a bug (an out-of-order record). */
type Written = undefined | RecordRefused | AssertionError;

interface Row {
  tx_id: string;
  owner_bank: string;
  owner_username: string;
  idempotency_key: string;
  to_bank: string;
  to_username: string;
  amount_minor: string;
  currency: string;
  state: DurableState;
  decision: 'commit' | 'abort' | null;
  failure_reason: string | null;
  failure_message: string | null;
  awaiting_banks: string[];
  created_at_ms: string;
  updated_at_ms: string;
  finished_at_ms: string | null;
  owner_instance: string;
  epoch: string;
}

export class PostgresTransferLog implements TransferLog {
  private readonly pool: pg.Pool;
  private readonly group: GroupCommit<Queued, Written>;
  /** Transfers this instance drives, with the epoch it holds each at (begun here or taken over). */
  private readonly epochs = new Map<string, number>();
  private open = true;
  readonly leases: TransferLeases;

  constructor(private readonly options: PostgresLogOptions) {
    this.pool = options.pool;
    this.group = new GroupCommit((batch) => this.writeBatch(batch), logGroupCommitBounds(options.groupCommit), options.clock,
      options.groupCommitObserver);
    this.leases = {
      instanceId: options.instanceId,
      renew: () => this.renew(),
      takeOverExpired: (limit) => this.takeOverExpired(limit),
      release: (txId) => { this.epochs.delete(txId); },
    };
  }

  get isOpen(): boolean {
    return this.open;
  }

  enqueue(record: LogRecord, nowMs: number, onDurable?: OnDurable, urgent = true): void {
    assert(this.open, 'transfer log is closed');
    const txId = record.type === 'begin' ? record.tx.id : record.txId;
    this.group.submit({ record, nowMs }, (err, written) => {
      const failure = err ?? written;
      if (failure === undefined) {
        if (record.type === 'begin') this.epochs.set(txId, 1);
        else if (record.type === 'completed') this.epochs.delete(txId);
      } else if (failure instanceof RecordRefused && failure.kind === 'fenced') {
        this.epochs.delete(txId);
      }
      onDurable?.(failure);
    }, urgent);
  }

  onFlushed(listener: () => void): void {
    this.group.onFlushed(listener);
  }

  flush(): Promise<void> {
    return this.group.flush();
  }

  async findByKey(owner: AccountRef, idempotencyKey: string): Promise<StoredTransfer | undefined> {
    const rows = await this.read<Row>('SELECT * FROM transfers WHERE owner_bank = $1 AND owner_username = $2 AND idempotency_key = $3',
      [owner.bank, owner.username, idempotencyKey], 'transfer-by-key');
    return rows[0] && toStored(rows[0]);
  }

  async findById(txId: string): Promise<StoredTransfer | undefined> {
    const rows = await this.read<Row>('SELECT * FROM transfers WHERE tx_id = $1', [txId], 'transfer-by-id');
    return rows[0] && toStored(rows[0]);
  }

  async unfinished(): Promise<StoredTransfer[]> {
    return (await this.read<Row>(`SELECT * FROM transfers WHERE ${UNFINISHED} ORDER BY created_at_ms`)).map(toStored);
  }

  async listUnfinished(limit: number): Promise<StoredTransfer[]> {
    assert(Number.isInteger(limit) && limit > 0, 'listUnfinished: limit must be a positive integer');
    return (await this.read<Row>(`SELECT * FROM transfers WHERE ${UNFINISHED} ORDER BY created_at_ms LIMIT $1`, [limit])).map(toStored);
  }

  async pruneFinal(beforeMs: number, limit: number): Promise<number> {
    assert(Number.isInteger(limit) && limit > 0, 'pruneFinal: limit must be a positive integer');
    const res = await this.pool.query(`DELETE FROM transfers WHERE tx_id IN
      (SELECT tx_id FROM transfers WHERE ${FINAL} AND finished_at_ms < $1 ORDER BY finished_at_ms LIMIT $2)`, [beforeMs, limit]);
    return res.rowCount ?? 0;
  }

  /** Writes what is queued, then stops writing (the pool is its opener's to end). */
  async close(): Promise<void> {
    if (!this.open) return;
    try {
      await this.flush();
    } finally {
      this.open = false;
      this.group.discard();
    }
  }

  /**
   * Renews the transfers this process holds (by id and epoch), not every row naming this instance:
   * a restarted instance must let its previous incarnation's transfers lapse so that a takeover
   * (its own or another instance's) drives them, instead of keeping them leased and undriven.
   *
   * It never waits for a row lock (SKIP LOCKED): a row locked now is one this instance's own group
   * commit is writing, and the two statements lock the same rows in no common order. Waiting made
   * them deadlock (seen under load: PostgreSQL broke the cycle after deadlock_timeout, 1 s, and the
   * whole batch of transfers waited that second). A row skipped keeps its lease until the next
   * renewal, leaseMs / leaseRenewIntervalMs rounds away.
   */
  private async renew(): Promise<number> {
    if (this.epochs.size === 0) return 0;
    const held = [...this.epochs];
    const res = await this.pool.query(
      `UPDATE transfers t SET lease_expires_at = clock_timestamp() + $2 * interval '1 millisecond'
         FROM (SELECT r.tx_id FROM transfers r
                 JOIN unnest($3::text[], $4::bigint[]) AS h(tx_id, epoch) ON r.tx_id = h.tx_id AND r.epoch = h.epoch
                WHERE r.owner_instance = $1 AND r.finished_at_ms IS NULL
                  FOR UPDATE OF r SKIP LOCKED) mine
        WHERE t.tx_id = mine.tx_id`,
      [this.options.instanceId, this.options.leaseMs, held.map(([id]) => id), held.map(([, epoch]) => epoch)]);
    return res.rowCount ?? 0;
  }

  private async takeOverExpired(limit: number): Promise<StoredTransfer[]> {
    // SKIP LOCKED: two instances looking at once split the expired rows instead of queueing.
    const res = await this.pool.query<Row>(
      `UPDATE transfers t SET owner_instance = $1, epoch = t.epoch + 1,
              lease_expires_at = clock_timestamp() + $2 * interval '1 millisecond'
         FROM (SELECT tx_id FROM transfers
                WHERE ${UNFINISHED} AND lease_expires_at < clock_timestamp()
                ORDER BY created_at_ms LIMIT $3 FOR UPDATE SKIP LOCKED) expired
        WHERE t.tx_id = expired.tx_id
        RETURNING t.*`,
      [this.options.instanceId, this.options.leaseMs, limit]);
    const rows = res.rows.sort((a, b) => Number(a.created_at_ms) - Number(b.created_at_ms));
    for (const row of rows) this.epochs.set(row.tx_id, Number(row.epoch));
    return rows.map(toStored);
  }

  /** A read; `name` makes it a prepared statement (the hot ones). */
  private async read<R extends pg.QueryResultRow>(text: string, values: unknown[] = [], name?: string): Promise<R[]> {
    try {
      return (await this.pool.query<R>({ text, values, ...(name ? { name } : {}) })).rows;
    } catch (err) {
      throw storeUnavailable(err);
    }
  }

  /**
   * One batch as one statement; one result per record. Rejects when nothing of it was written.
   * Each record carries the epoch held now (not when it was queued): a takeover of our own
   * transfer (its lease lapsed while this gateway was slow) moves the epoch under records the
   * same driver queued, and they are still this owner's.
   */
  private async writeBatch(queued: readonly Queued[]): Promise<Written[]> {
    const me = this.options.instanceId;
    const fencedBefore = new Map<Queued, RecordRefused>();
    const heldOf = new Map<Queued, Held>();
    for (const q of queued) {
      const r = q.record;
      if (r.type === 'begin') {
        heldOf.set(q, { ...q, epoch: 1 });
        continue;
      }
      const epoch = this.epochs.get(r.txId);
      if (epoch === undefined) fencedBefore.set(q, new RecordRefused('fenced', r.txId, `transfer ${r.txId} was taken over by another gateway`));
      else heldOf.set(q, { ...q, epoch });
    }
    const batch = [...heldOf.values()];
    // An ack followed by its transfer's completion in the same batch is implied by it.
    const completed = new Set(batch.flatMap((q) => (q.record.type === 'completed' ? [q.record.txId] : [])));
    const begins: Held[] = [];
    const decisions: Held[] = [];
    const completions: Held[] = [];
    /** Acks per transfer: several banks of one transfer may be acknowledged in one batch. */
    const acks = new Map<string, { banks: string[]; epoch: number; nowMs: number }>();
    for (const q of batch) {
      const r = q.record;
      if (r.type === 'begin') begins.push(q);
      else if (r.type === 'decision') decisions.push(q);
      else if (r.type === 'completed') completions.push(q);
      else if (!completed.has(r.txId)) {
        const entry = acks.get(r.txId) ?? { banks: [], epoch: q.epoch, nowMs: q.nowMs };
        entry.banks.push(r.bank);
        acks.set(r.txId, entry);
      }
    }
    const col = <T>(items: readonly Held[], f: (q: Held) => T): T[] => items.map(f);
    const rec = <K extends LogRecord['type']>(q: Held) => q.record as Extract<LogRecord, { type: K }>;
    const values: unknown[] = [me, this.options.leaseMs];
    const param = (v: unknown) => `$${values.push(v)}`;

    const beginSql = `INSERT INTO transfers (tx_id, owner_bank, owner_username, idempotency_key, to_bank, to_username,
        amount_minor, currency, state, created_at_ms, updated_at_ms, owner_instance, epoch, lease_expires_at)
      SELECT u.tx_id, u.ob, u.ou, u.k, u.tb, u.tu, u.amount, u.currency, 'preparing', u.created, u.now, $1, 1,
             clock_timestamp() + $2 * interval '1 millisecond'
        FROM unnest(${param(col(begins, (q) => rec<'begin'>(q).tx.id))}::text[],
                    ${param(col(begins, (q) => rec<'begin'>(q).tx.from.bank))}::text[],
                    ${param(col(begins, (q) => rec<'begin'>(q).tx.from.username))}::text[],
                    ${param(col(begins, (q) => rec<'begin'>(q).tx.idempotencyKey))}::text[],
                    ${param(col(begins, (q) => rec<'begin'>(q).tx.to.bank))}::text[],
                    ${param(col(begins, (q) => rec<'begin'>(q).tx.to.username))}::text[],
                    ${param(col(begins, (q) => rec<'begin'>(q).tx.amountMinor.toString()))}::bigint[],
                    ${param(col(begins, (q) => rec<'begin'>(q).tx.currency))}::text[],
                    ${param(col(begins, (q) => rec<'begin'>(q).tx.createdAtMs))}::bigint[],
                    ${param(col(begins, (q) => q.nowMs))}::bigint[])
             AS u(tx_id, ob, ou, k, tb, tu, amount, currency, created, now)
      ON CONFLICT DO NOTHING
      RETURNING tx_id`;
    const decisionSql = `UPDATE transfers t SET state = u.state, decision = u.decision, failure_reason = u.reason,
        failure_message = u.message, awaiting_banks = string_to_array(u.awaiting, ','), updated_at_ms = u.now
        FROM unnest(${param(col(decisions, (q) => rec<'decision'>(q).txId))}::text[],
                    ${param(col(decisions, (q) => (rec<'decision'>(q).decision === 'commit' ? 'committing' : 'aborting')))}::text[],
                    ${param(col(decisions, (q) => rec<'decision'>(q).decision))}::text[],
                    ${param(col(decisions, (q) => failureOf(rec<'decision'>(q))?.reason ?? null))}::text[],
                    ${param(col(decisions, (q) => failureOf(rec<'decision'>(q))?.message ?? null))}::text[],
                    ${param(col(decisions, (q) => rec<'decision'>(q).awaiting.join(',')))}::text[],
                    ${param(col(decisions, (q) => q.epoch))}::bigint[],
                    ${param(col(decisions, (q) => q.nowMs))}::bigint[])
             AS u(tx_id, state, decision, reason, message, awaiting, epoch, now)
       WHERE t.tx_id = u.tx_id AND t.state = 'preparing' AND t.owner_instance = $1 AND t.epoch = u.epoch
      RETURNING t.tx_id`;
    const ackList = [...acks.entries()];
    const ackSql = `UPDATE transfers t SET updated_at_ms = u.now,
        awaiting_banks = ARRAY(SELECT b FROM unnest(t.awaiting_banks) AS b WHERE b <> ALL (string_to_array(u.banks, ',')))
        FROM unnest(${param(ackList.map(([txId]) => txId))}::text[],
                    ${param(ackList.map(([, a]) => a.banks.join(',')))}::text[],
                    ${param(ackList.map(([, a]) => a.epoch))}::bigint[],
                    ${param(ackList.map(([, a]) => a.nowMs))}::bigint[])
             AS u(tx_id, banks, epoch, now)
       WHERE t.tx_id = u.tx_id AND t.state IN ('committing', 'aborting') AND t.owner_instance = $1 AND t.epoch = u.epoch
         AND string_to_array(u.banks, ',') <@ t.awaiting_banks
      RETURNING t.tx_id`;
    const completionSql = `UPDATE transfers t SET state = u.state, failure_reason = u.reason, failure_message = u.message,
        awaiting_banks = '{}', updated_at_ms = u.now, finished_at_ms = u.now, lease_expires_at = NULL
        FROM unnest(${param(col(completions, (q) => rec<'completed'>(q).txId))}::text[],
                    ${param(col(completions, (q) => (rec<'completed'>(q).outcome.kind === 'committed' ? 'committed' : 'aborted')))}::text[],
                    ${param(col(completions, (q) => (rec<'completed'>(q).outcome.kind === 'committed' ? 'committing' : 'aborting')))}::text[],
                    ${param(col(completions, (q) => outcomeFailure(rec<'completed'>(q))?.reason ?? null))}::text[],
                    ${param(col(completions, (q) => outcomeFailure(rec<'completed'>(q))?.message ?? null))}::text[],
                    ${param(col(completions, (q) => q.epoch))}::bigint[],
                    ${param(col(completions, (q) => q.nowMs))}::bigint[])
             AS u(tx_id, state, from_state, reason, message, epoch, now)
       WHERE t.tx_id = u.tx_id AND t.state = u.from_state AND t.owner_instance = $1 AND t.epoch = u.epoch
         AND (u.reason IS NULL) = (t.decision = 'commit')
      RETURNING t.tx_id`;
    // The text is the same for every batch (empty arrays for absent kinds): a named statement,
    // parsed and planned once per connection.
    const res = await this.pool.query<{ kind: string; tx_id: string }>({
      name: 'transfer-log-batch',
      text: `WITH b AS (${beginSql}), d AS (${decisionSql}), a AS (${ackSql}), c AS (${completionSql})
       SELECT 'b' AS kind, tx_id FROM b UNION ALL SELECT 'd', tx_id FROM d
       UNION ALL SELECT 'a', tx_id FROM a UNION ALL SELECT 'c', tx_id FROM c`,
      values,
    });
    const done = new Set(res.rows.map((r) => `${r.kind}:${r.tx_id}`));
    const KIND = { begin: 'b', decision: 'd', ack: 'a', completed: 'c' } as const;
    const missed = batch.filter((q) => {
      const r = q.record;
      if (r.type === 'ack' && completed.has(r.txId)) return false;
      return !done.has(`${KIND[r.type]}:${r.type === 'begin' ? r.tx.id : r.txId}`);
    });
    // Why did a write match nothing? Another owner (fenced), a taken key, or a bug.
    const current = missed.length === 0 ? new Map<string, Row>() : new Map((await this.pool.query<Row>(
      'SELECT * FROM transfers WHERE tx_id = ANY($1::text[])',
      [missed.map((q) => (q.record.type === 'begin' ? q.record.tx.id : q.record.txId))])).rows.map((r) => [r.tx_id, r]));
    return queued.map((original): Written => {
      const refusedEarly = fencedBefore.get(original);
      if (refusedEarly) return refusedEarly;
      const q = heldOf.get(original);
      assert(q, 'transfer log: a record lost its place in the batch');
      if (!missed.includes(q)) return undefined;
      const r = q.record;
      const txId = r.type === 'begin' ? r.tx.id : r.txId;
      if (r.type === 'begin') {
        return new RecordRefused('key_taken', txId, `idempotency key ${r.tx.idempotencyKey} of ${r.tx.from.username}@${r.tx.from.bank} belongs to another transfer`);
      }
      const row = current.get(txId);
      if (row && (row.owner_instance !== me || Number(row.epoch) !== q.epoch)) {
        return new RecordRefused('fenced', txId, `transfer ${txId} is owned by ${row.owner_instance} at epoch ${row.epoch} now (this gateway held epoch ${q.epoch})`);
      }
      return new AssertionError(`store: ${r.type} record for ${txId} did not match its expected prior state (${row ? row.state : 'no row'})`);
    });
  }
}

function failureOf(record: Extract<LogRecord, { type: 'decision' }>): Failure | undefined {
  return record.decision === 'abort' ? record.failure : undefined;
}

function outcomeFailure(record: Extract<LogRecord, { type: 'completed' }>): Failure | undefined {
  return record.outcome.kind === 'aborted' ? record.outcome.failure : undefined;
}

function toStored(row: Row): StoredTransfer {
  const failure = storedFailure(row);
  const final = row.state === 'committed' || row.state === 'aborted';
  assert(final === (row.finished_at_ms !== null), `store: transfer ${row.tx_id} is ${row.state} with finished_at_ms ${row.finished_at_ms}`);
  return {
    tx: {
      id: row.tx_id,
      idempotencyKey: row.idempotency_key,
      from: { bank: row.owner_bank, username: row.owner_username },
      to: { bank: row.to_bank, username: row.to_username },
      amountMinor: BigInt(row.amount_minor),
      currency: row.currency,
      createdAtMs: Number(row.created_at_ms),
    },
    state: row.state,
    ...(failure ? { failure } : {}),
    awaiting: row.awaiting_banks,
    updatedAtMs: Number(row.updated_at_ms),
  };
}

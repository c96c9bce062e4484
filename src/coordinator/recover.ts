import { AssertionError, assert, unreachable } from '../core/assert.js';
import type { Failure } from '../core/errors.js';
import { testBugs } from '../core/test-bugs.js';
import { banksOf, type DurableTx, type Effect, type LogRecord, type Phase } from './types.js';

// Recovery after a restart, pure like `step`: from the durable rows to the phases to resume and
// the effects that resume them. Nobody waits for a reply any more, so recovered phases never reply.
// A presumed-abort decision is written like a live one: its Aborts follow on `persisted` (step).

/**
 * The failure recorded for a transfer found undecided with nobody driving it (presumed abort):
 * after a restart, a takeover, or a run stopped by a failed log write.
 */
export const PRESUMED_ABORT: Failure = {
  reason: 'TRANSACTION_ABORTED',
  message: 'the gateway stopped before this transfer was decided (a restart or a failed write), so it was aborted and '
    + 'nothing was transferred; to make the payment, send it again with a new idempotency key',
};

export interface Recovered {
  readonly phases: ReadonlyMap<string, Phase>;
  readonly effects: ReadonlyMap<string, readonly Effect[]>;
}

export function recover(rows: readonly DurableTx[]): Recovered {
  const phases = new Map<string, Phase>();
  const effects = new Map<string, readonly Effect[]>();
  for (const row of rows) {
    assert(!phases.has(row.tx.id), `recovery: transaction ${row.tx.id} appears twice`);
    if (testBugs.recoverySkipsPresumedAbort && row.state === 'preparing') continue;
    const r = recoverOne(row);
    phases.set(row.tx.id, r.phase);
    effects.set(row.tx.id, r.effects);
  }
  return { phases, effects };
}

function recoverOne(row: DurableTx): { phase: Phase; effects: Effect[] } {
  const { tx } = row;
  const banks = banksOf(tx);
  for (const b of row.awaiting) assert(banks.includes(b), `recovery: transaction ${tx.id} awaits ${b}, not a bank of it`);
  switch (row.state) {
    case 'preparing': {
      // Presumed abort: no decision on disk means abort. Any bank may hold a prepared leg (or get a
      // late prepare), so every bank gets an Abort.
      const effects: Effect[] = [
        { type: 'persist', record: { type: 'decision', txId: tx.id, decision: 'abort', failure: PRESUMED_ABORT, awaiting: banks }, awaited: true },
      ];
      return {
        phase: { kind: 'aborting', tx, failure: PRESUMED_ABORT, durable: false, replied: true, votes: new Map(), awaiting: new Set(banks) },
        effects,
      };
    }
    case 'committing': {
      if (row.awaiting.length === 0) {
        return {
          phase: { kind: 'committed', tx },
          effects: [{ type: 'persist', record: { type: 'completed', txId: tx.id, outcome: { kind: 'committed' } }, awaited: false }],
        };
      }
      return {
        phase: { kind: 'committing', tx, durable: true, awaiting: new Set(row.awaiting), replyWhenDurable: false, replyAtMs: 0, replied: true },
        effects: row.awaiting.map((bank) => ({ type: 'send', rpc: 'commit', bank })),
      };
    }
    case 'aborting': {
      assert(row.failure, `recovery: aborting transaction ${tx.id} has no failure`);
      const failure = row.failure;
      if (row.awaiting.length === 0) {
        return {
          phase: { kind: 'aborted', tx, failure },
          effects: [{ type: 'persist', record: { type: 'completed', txId: tx.id, outcome: { kind: 'aborted', failure } }, awaited: false }],
        };
      }
      return {
        phase: { kind: 'aborting', tx, failure, durable: true, replied: true, votes: new Map(), awaiting: new Set(row.awaiting) },
        effects: row.awaiting.map((bank) => ({ type: 'send', rpc: 'abort', bank })),
      };
    }
    case 'committed':
      return { phase: { kind: 'committed', tx }, effects: [] };
    case 'aborted':
      assert(row.failure, `recovery: aborted transaction ${tx.id} has no failure`);
      return { phase: { kind: 'aborted', tx, failure: row.failure }, effects: [] };
    default:
      return unreachable(row.state, 'unknown durable state');
  }
}

/**
 * Folds log records into durable rows: what the store must hold after writing them. The store
 * applies records as SQL updates; tests compare both, and it documents which transitions are legal.
 */
export function applyRecord(rows: Map<string, DurableTx>, record: LogRecord): void {
  if (record.type === 'begin') {
    assert(!rows.has(record.tx.id), `record: transaction ${record.tx.id} begins twice`);
    rows.set(record.tx.id, { tx: record.tx, state: 'preparing', awaiting: [] });
    return;
  }
  const row = rows.get(record.txId);
  assert(row, `record ${record.type}: unknown transaction ${record.txId}`);
  switch (record.type) {
    case 'decision':
      assert(row.state === 'preparing', `record: decision for transaction ${record.txId} which is ${row.state}`);
      rows.set(record.txId, record.decision === 'commit'
        ? { tx: row.tx, state: 'committing', awaiting: record.awaiting }
        : { tx: row.tx, state: 'aborting', failure: record.failure, awaiting: record.awaiting });
      return;
    case 'ack':
      assert(row.state === 'committing' || row.state === 'aborting', `record: ack for transaction ${record.txId} which is ${row.state}`);
      assert(row.awaiting.includes(record.bank), `record: ack from ${record.bank} not awaited for ${record.txId}`);
      rows.set(record.txId, { ...row, awaiting: row.awaiting.filter((b) => b !== record.bank) });
      return;
    case 'completed': {
      const { outcome } = record;
      if (outcome.kind === 'committed') {
        assert(row.state === 'committing', `record: committed for transaction ${record.txId} which is ${row.state}`);
        rows.set(record.txId, { tx: row.tx, state: 'committed', awaiting: [] });
      } else {
        assert(row.state === 'aborting', `record: aborted for transaction ${record.txId} which is ${row.state}`);
        rows.set(record.txId, { tx: row.tx, state: 'aborted', failure: outcome.failure, awaiting: [] });
      }
      return;
    }
    default:
      throw new AssertionError(`unknown record ${JSON.stringify((record as { type: unknown }).type)}`);
  }
}

/** Rows after writing the records in order (tests; the store keeps rows directly). */
export function replayRecords(records: readonly LogRecord[]): DurableTx[] {
  const rows = new Map<string, DurableTx>();
  for (const r of records) applyRecord(rows, r);
  return [...rows.values()];
}

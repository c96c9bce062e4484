import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { AssertionError } from '../../src/core/assert.js';
import { systemClock } from '../../src/core/clock.js';
import { isUuid, newId, newTimeOrderedId } from '../../src/core/ids.js';
import { rng } from '../../src/core/random.js';
import type { LogRecord, Tx } from '../../src/coordinator/index.js';
import { LedgerGroupCommit } from '../../src/bank/group-commit.js';
import { Ledger } from '../../src/bank/ledger.js';
import { bankService } from '../../src/bank/service.js';
import { SqliteTransferLog } from '../../src/gateway/store/sqlite.js';
import { LegKind, TransactionState, Vote } from '../../src/gen/bank/v1/bank.js';
import { storeOptions } from '../helpers/clock.js';

// Group commit and batched 2PC calls, against real SQLite files in a temp dir: many records or
// operations share one transaction, each is still decided and answered on its own, and nothing is
// answered before the shared transaction is on disk.

describe('group commit', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-group-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('gateway store', () => {
    const tx = (): Tx => ({
      id: newId(), idempotencyKey: newId(), from: { bank: 'BankA', username: 'alice' }, to: { bank: 'BankB', username: 'bob' },
      amountMinor: 5n, currency: 'EUR', createdAtMs: 1,
    });

    it('writes the records queued in one turn in one transaction, then tells each waiter', async () => {
      const store = new SqliteTransferLog(path.join(dir, 'gateway.sqlite'), storeOptions());
      const txs = [tx(), tx(), tx()];
      const told: string[] = [];
      for (const t of txs) {
        store.enqueue({ type: 'begin', tx: t }, 1, (err) => {
          expect(err).to.equal(undefined);
          // Durable when the waiter runs: another connection sees the row.
          const reader = new SqliteTransferLog(store.file, { readonly: true });
          expect(reader.findById(t.id)?.state).to.equal('preparing');
          reader.close();
          told.push(t.id);
        });
      }
      expect(store.queued).to.equal(3);
      expect(told).to.deep.equal([]);
      await new Promise((r) => setImmediate(r));
      expect(told).to.deep.equal(txs.map((t) => t.id));
      expect(store.queued).to.equal(0);
      store.close();
    });

    it('a record that does not fit fails alone; the others of its batch are written', async () => {
      const store = new SqliteTransferLog(path.join(dir, 'gateway.sqlite'), storeOptions());
      const good = tx();
      const results: Record<string, string> = {};
      store.enqueue({ type: 'begin', tx: good }, 1, (err) => { results.good = err ? 'failed' : 'ok'; });
      // A decision for a transfer that never began matches no row: a bug, refused alone.
      store.enqueue({ type: 'decision', txId: newId(), decision: 'commit', awaiting: ['BankA'] }, 1, (err) => {
        results.bad = err instanceof AssertionError ? 'failed' : 'ok';
      });
      await store.flush();
      expect(results).to.deep.equal({ good: 'ok', bad: 'failed' });
      expect(store.findById(good.id)?.state).to.equal('preparing');
      store.close();
    });

    it('writes a full batch at once and keeps the order of records; close() writes what is queued', () => {
      const store = new SqliteTransferLog(path.join(dir, 'gateway.sqlite'), storeOptions({ persistBatchMaxRecords: 2, persistBatchWindowMs: 0 }));
      const t = tx();
      const records: LogRecord[] = [
        { type: 'begin', tx: t },
        { type: 'decision', txId: t.id, decision: 'commit', awaiting: ['BankA', 'BankB'] },
        { type: 'ack', txId: t.id, bank: 'BankA' },
      ];
      const durable: string[] = [];
      for (const r of records) store.enqueue(r, 1, () => durable.push(r.type));
      // The first two filled a batch and were written synchronously; the ack waits.
      expect(durable).to.deep.equal(['begin', 'decision']);
      expect(store.findById(t.id)?.awaiting).to.deep.equal(['BankA', 'BankB']);
      store.close();
      const reopened = new SqliteTransferLog(store.file, storeOptions());
      expect(reopened.findById(t.id)).to.deep.include({ state: 'committing', awaiting: ['BankB'] });
      expect(() => reopened.append({ type: 'ack', txId: t.id, bank: 'BankA' }, 2)).to.throw(AssertionError);
      reopened.close();
      expect(durable).to.deep.equal(['begin', 'decision', 'ack']);
    });
  });

  it('transaction ids are UUIDv7: valid, and later ones sort after earlier ones (append-only inserts)', () => {
    const ids = [0, 1, 255, 256, 1_700_000_000_000, 1_700_000_000_001, 2 ** 47].map((ms) => newTimeOrderedId(ms, rng(ms)));
    for (const id of ids) {
      expect(isUuid(id), id).to.equal(true);
      expect(id[14]).to.equal('7');
    }
    expect([...ids].sort()).to.deep.equal(ids);
  });

  describe('bank ledger', () => {
    let ledger: Ledger;
    const leg = (txId: string, kind: 'debit' | 'credit', username: string, amountMinor: bigint) => ({
      txId, kind, username, amountMinor, currency: 'EUR', counterpartyBank: 'BankB', counterpartyUsername: 'bob',
    });
    beforeEach(() => {
      ledger = Ledger.open(path.join(dir, 'BankA'));
      ledger.createAccount({ username: 'alice', passwordHash: 'x', currency: 'EUR', balanceMinor: 100n });
      ledger.createAccount({ username: 'carol', passwordHash: 'x', currency: 'EUR', balanceMinor: 0n });
    });
    afterEach(() => ledger.close());

    it('decides each operation of a group on its own, in order, in one transaction', () => {
      const [t1, t2, t3] = [newId(), newId(), newId()];
      const results = ledger.execute([
        { type: 'prepare', leg: leg(t1, 'debit', 'alice', 60n) },
        // Only 40 left available after the first hold: NO, and nothing held for it.
        { type: 'prepare', leg: leg(t2, 'debit', 'alice', 50n) },
        { type: 'prepare', leg: leg(t3, 'credit', 'carol', 7n) },
        { type: 'commit', txId: t1 },
        { type: 'abort', txId: t3 },
      ]);
      expect(results[0]).to.deep.equal({ ok: true, value: 'insert' });
      expect(results[1]).to.deep.include({ ok: false, reason: 'INSUFFICIENT_FUNDS' });
      expect(results[2]).to.deep.equal({ ok: true, value: 'insert' });
      expect(results.slice(3)).to.deep.equal(['committed', 'aborted']);
      expect(ledger.account('alice')).to.deep.include({ balanceMinor: 40n, heldMinor: 0n });
      expect(ledger.txState(t2)).to.equal(undefined);
      expect(ledger.account('carol')).to.deep.include({ balanceMinor: 0n, heldMinor: 0n });
    });

    it('the group-commit queue runs a faulty operation alone, so the others still succeed', async () => {
      const group = new LedgerGroupCommit(ledger, { groupCommitOpsMax: 16, groupCommitWindowMs: 0 }, systemClock);
      const t1 = newId();
      const settled = await Promise.allSettled([
        group.submit({ type: 'prepare', leg: leg(t1, 'debit', 'alice', 10n) }),
        // Commit of a transaction never prepared here: an assertion, for this operation only.
        group.submit({ type: 'commit', txId: newId() }),
        group.submit({ type: 'commit', txId: t1 }),
      ]);
      expect(settled.map((s) => s.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
      expect(ledger.account('alice')).to.deep.include({ balanceMinor: 90n, heldMinor: 0n });
    });

    it('answers PrepareBatch / CommitBatch / AbortBatch item by item; a malformed leg is a NO alone', async () => {
      const service = bankService(ledger, { historyPageSizeDefault: 20, historyPageSizeMax: 100, batchItemsMax: 8, groupCommitOpsMax: 64, groupCommitWindowMs: 0, passwordChecksMax: 1, passwordCheckQueueMax: 0, readSettleWaitMaxMs: 1000, readSettleWaitersMax: 16 }, systemClock);
      const ctx = {} as never;
      const [t1, t2, t3] = [newId(), newId(), newId()];
      const item = (transactionId: string, kind: LegKind, username: string, amountMinor: bigint) => ({
        transactionId, kind, username, amountMinor, currency: 'EUR', counterpartyBank: 'BankB', counterpartyUsername: 'bob',
      });
      const prepared = await service.prepareBatch({
        legs: [
          item(t1, LegKind.LEG_KIND_DEBIT, 'alice', 30n),
          item(t2, LegKind.LEG_KIND_UNSPECIFIED, 'alice', 30n),
          item(t3, LegKind.LEG_KIND_CREDIT, 'nobody', 30n),
          item(t2, LegKind.LEG_KIND_CREDIT, 'carol', 30n),
        ],
      }, ctx);
      expect((prepared.votes ?? []).map((v) => [v.vote, v.reason])).to.deep.equal([
        [Vote.VOTE_YES, ''], [Vote.VOTE_NO, 'INVALID_ARGUMENT'], [Vote.VOTE_NO, 'ACCOUNT_NOT_FOUND'], [Vote.VOTE_YES, ''],
      ]);
      const committed = await service.commitBatch({ transactionIds: [t1, t1] }, ctx);
      expect(committed.states).to.deep.equal([TransactionState.TRANSACTION_STATE_COMMITTED, TransactionState.TRANSACTION_STATE_COMMITTED]);
      const aborted = await service.abortBatch({ transactionIds: [t2, t3] }, ctx);
      expect(aborted.states).to.deep.equal([TransactionState.TRANSACTION_STATE_ABORTED, TransactionState.TRANSACTION_STATE_ABORTED]);
      expect(ledger.account('alice')).to.deep.include({ balanceMinor: 70n, heldMinor: 0n });
      expect(ledger.account('carol')).to.deep.include({ balanceMinor: 0n, heldMinor: 0n });
      // A tombstone refuses a late prepare of an aborted transaction.
      const late = await service.prepareBatch({ legs: [item(t3, LegKind.LEG_KIND_DEBIT, 'alice', 1n)] }, ctx);
      expect(late.votes?.[0]).to.deep.include({ vote: Vote.VOTE_NO, reason: 'TRANSACTION_ABORTED' });
      // Bounded: an empty or oversized batch is refused whole.
      await expectReason(service.commitBatch({ transactionIds: [] }, ctx), 'INVALID_ARGUMENT');
      await expectReason(service.commitBatch({ transactionIds: Array.from({ length: 9 }, () => newId()) }, ctx), 'INVALID_ARGUMENT');
    });
  });
});

async function expectReason(p: Promise<unknown>, reason: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect((err as { reason?: string }).reason).to.equal(reason);
    return;
  }
  throw new Error(`expected ${reason}`);
}

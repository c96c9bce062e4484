import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { fail, ok, type Result } from '../core/errors.js';
import { testBugs } from '../core/test-bugs.js';
import {
  decideAbort,
  decideCommit,
  decidePrepare,
  type AccountState,
  type Leg,
  type LegKind,
  type PrepareAction,
  type TxState,
} from './participant.js';
import { migrate } from './schema.js';

// The bank's durable ledger. Every public method is one SQLite transaction; better-sqlite3 runs it
// synchronously, so two prepares can never interleave and overdraw an account. execute() runs
// many 2PC operations in one transaction (group commit: one fsync for all of them).
// WAL + synchronous=FULL: a YES vote is on disk before the RPC answers.

export const LEDGER_FILE = 'ledger.sqlite';

export interface NewAccount {
  readonly username: string;
  readonly passwordHash: string;
  readonly currency: string;
  readonly balanceMinor: bigint;
}

export interface HistoryRow {
  readonly seq: bigint;
  readonly txId: string;
  readonly direction: LegKind;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly counterpartyBank: string;
  readonly counterpartyUsername: string;
  readonly balanceAfterMinor: bigint;
  readonly createdAtMs: number;
}

export interface HistoryPage {
  readonly entries: readonly HistoryRow[];
  /** Pass as `beforeSeq` for the next page; undefined when there is none. */
  readonly nextBeforeSeq: bigint | undefined;
}

/** A transaction prepared here whose outcome the coordinator has not told us yet. */
export interface InDoubtTx {
  readonly txId: string;
  readonly createdAtMs: number;
  readonly legs: readonly Leg[];
}

export interface CurrencyTotals {
  readonly accounts: number;
  readonly balanceMinor: bigint;
  readonly heldMinor: bigint;
}

export interface Totals extends CurrencyTotals {
  readonly byCurrency: Readonly<Record<string, CurrencyTotals>>;
}

/** One 2PC operation of a group commit (Ledger.execute). */
export type LedgerOp =
  | { readonly type: 'prepare'; readonly leg: Leg }
  | { readonly type: 'commit'; readonly txId: string }
  | { readonly type: 'abort'; readonly txId: string };

/** A prepare's vote (a failed Result is NO), or the state after a commit / abort. */
export type LedgerOpResult = Result<PrepareAction> | TxState;

type Row = Record<string, unknown>;

function toLeg(r: Row): Leg {
  return {
    txId: r.tx_id as string,
    kind: r.kind as LegKind,
    username: r.username as string,
    amountMinor: r.amount_minor as bigint,
    currency: r.currency as string,
    counterpartyBank: r.counterparty_bank as string,
    counterpartyUsername: r.counterparty_username as string,
  };
}

function toAccount(r: Row): AccountState {
  const a = {
    username: r.username as string,
    currency: r.currency as string,
    balanceMinor: r.balance_minor as bigint,
    heldMinor: r.held_minor as bigint,
  };
  // Read-back pair of the CHECK constraints.
  assert(a.heldMinor >= 0n && a.heldMinor <= a.balanceMinor, `account ${a.username} has held > balance`);
  return a;
}

function toHistory(r: Row): HistoryRow {
  return {
    seq: r.seq as bigint,
    txId: r.tx_id as string,
    direction: r.direction as LegKind,
    amountMinor: r.amount_minor as bigint,
    currency: r.currency as string,
    counterpartyBank: r.counterparty_bank as string,
    counterpartyUsername: r.counterparty_username as string,
    balanceAfterMinor: r.balance_after_minor as bigint,
    createdAtMs: Number(r.created_at),
  };
}

/**
 * A failure of the ledger's storage (a full disk, an I/O error, a database busy beyond its
 * timeout): the operation did not happen, nothing of it is on disk, and it may be tried again.
 */
export function isStorageError(err: unknown): boolean {
  return err instanceof Database.SqliteError;
}

export class Ledger {
  private readonly db: Database.Database;
  private readonly sql;
  /** The group commit's transaction, made once (better-sqlite3 builds a wrapper per transaction() call). */
  private readonly executeAll: Database.Transaction<(ops: readonly LedgerOp[]) => LedgerOpResult[]>;

  private constructor(
    readonly file: string,
    private readonly now: () => number,
    database?: Database.Database,
  ) {
    this.db = database ?? new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    // int64 columns come back as bigint: money never passes through a float.
    this.db.defaultSafeIntegers(true);
    migrate(this.db);
    this.sql = this.prepareStatements();
    this.executeAll = this.db.transaction((ops: readonly LedgerOp[]) => ops.map((op) => this.executeInTx(op)));
  }

  /** Opens (creating if needed) the ledger in `dataDir`, which is made private to this user. */
  static open(dataDir: string, now: () => number = Date.now): Ledger {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dataDir, 0o700);
    return new Ledger(path.join(dataDir, LEDGER_FILE), now);
  }

  /**
   * The ledger over an already open database (the simulator's in-memory one), named `name` in
   * messages; it owns the database from now on and closes it like its own file.
   */
  static over(database: Database.Database, name: string, now: () => number = Date.now): Ledger {
    return new Ledger(name, now, database);
  }

  private prepareStatements() {
    const db = this.db;
    return {
      insertAccount: db.prepare(
        `INSERT INTO accounts (username, password_hash, currency, balance_minor, held_minor, created_at)
         VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (username) DO NOTHING`,
      ),
      account: db.prepare('SELECT username, currency, balance_minor, held_minor FROM accounts WHERE username = ?'),
      passwordHash: db.prepare('SELECT password_hash FROM accounts WHERE username = ?'),
      txState: db.prepare('SELECT state FROM transactions WHERE id = ?'),
      insertTx: db.prepare(`INSERT INTO transactions (id, state, created_at, updated_at) VALUES (?, ?, ?, ?)`),
      setTxState: db.prepare('UPDATE transactions SET state = ?, updated_at = ? WHERE id = ?'),
      leg: db.prepare('SELECT * FROM legs WHERE tx_id = ? AND kind = ?'),
      legs: db.prepare(`SELECT * FROM legs WHERE tx_id = ? ORDER BY CASE kind WHEN 'debit' THEN 0 ELSE 1 END`),
      insertLeg: db.prepare(
        `INSERT INTO legs (tx_id, kind, username, amount_minor, currency, counterparty_bank, counterparty_username)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      hold: db.prepare(
        `UPDATE accounts SET held_minor = held_minor + @amount
         WHERE username = @username AND balance_minor - held_minor >= @amount`,
      ),
      release: db.prepare('UPDATE accounts SET held_minor = held_minor - @amount WHERE username = @username AND held_minor >= @amount'),
      applyDebit: db.prepare(
        `UPDATE accounts SET balance_minor = balance_minor - @amount, held_minor = held_minor - @amount
         WHERE username = @username AND held_minor >= @amount RETURNING balance_minor`,
      ),
      applyCredit: db.prepare(
        'UPDATE accounts SET balance_minor = balance_minor + @amount WHERE username = @username RETURNING balance_minor',
      ),
      insertHistory: db.prepare(
        `INSERT INTO history (username, tx_id, direction, amount_minor, currency, counterparty_bank,
           counterparty_username, balance_after_minor, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      historyPage: db.prepare(
        'SELECT * FROM history WHERE username = ? AND seq < ? ORDER BY seq DESC LIMIT ?',
      ),
      inDoubt: db.prepare(
        `SELECT id, created_at FROM transactions WHERE state = 'prepared' ORDER BY created_at, id LIMIT ?`,
      ),
      inDoubtLegs: db.prepare(
        `SELECT COUNT(*) AS n FROM transactions t JOIN legs l ON l.tx_id = t.id WHERE t.state = 'prepared'`,
      ),
      // Through the partial index transactions_prepared: as many rows as legs in flight, not history.
      preparedOf: db.prepare(
        `SELECT l.tx_id FROM transactions t JOIN legs l ON l.tx_id = t.id WHERE t.state = 'prepared' AND l.username = ?`,
      ),
      preparedBefore: db.prepare(
        `SELECT id FROM transactions WHERE state = 'prepared' AND created_at < ? ORDER BY created_at, id LIMIT ?`,
      ),
      totals: db.prepare(
        `SELECT currency, COUNT(*) AS accounts, COALESCE(SUM(balance_minor), 0) AS balance,
           COALESCE(SUM(held_minor), 0) AS held
         FROM accounts GROUP BY currency ORDER BY currency`,
      ),
    };
  }

  /** Adds an account; 'exists' (and no change) when the username is taken. */
  createAccount(a: NewAccount): 'created' | 'exists' {
    assert(a.balanceMinor >= 0n, 'opening balance must not be negative');
    const info = this.db.transaction(() =>
      this.sql.insertAccount.run(a.username, a.passwordHash, a.currency, a.balanceMinor, this.now()),
    ).immediate();
    return info.changes === 1 ? 'created' : 'exists';
  }

  account(username: string): AccountState | undefined {
    const r = this.sql.account.get(username) as Row | undefined;
    return r ? toAccount(r) : undefined;
  }

  /** The stored argon2id hash, for the caller to verify outside any SQLite transaction. */
  passwordHash(username: string): string | undefined {
    const r = this.sql.passwordHash.get(username) as Row | undefined;
    return r ? (r.password_hash as string) : undefined;
  }

  txState(txId: string): TxState | undefined {
    const r = this.sql.txState.get(txId) as Row | undefined;
    return r ? (r.state as TxState) : undefined;
  }

  /** PrepareDebit / PrepareCredit: a failed Result is a NO vote; nothing changes then. */
  prepare(leg: Leg): Result<PrepareAction> {
    return this.db.transaction(() => this.prepareInTx(leg)).immediate();
  }

  /** Applies every prepared leg once; a repeat changes nothing. Returns the state: committed. */
  commit(txId: string): TxState {
    return this.db.transaction(() => this.commitInTx(txId)).immediate();
  }

  /** Releases the holds; for an unknown transaction leaves a tombstone. Returns the state: aborted. */
  abort(txId: string): TxState {
    return this.db.transaction(() => this.abortInTx(txId)).immediate();
  }

  /**
   * Group commit: performs many 2PC operations in ONE transaction (one fsync), in order, each
   * decided on its own exactly as prepare/commit/abort would (a NO vote changes nothing and does
   * not affect the others). Returns one result per operation, same order. If any operation throws
   * (an assertion), nothing of the whole group is written and the error propagates.
   */
  execute(ops: readonly LedgerOp[]): LedgerOpResult[] {
    return this.executeAll.immediate(ops);
  }

  private executeInTx(op: LedgerOp): LedgerOpResult {
    switch (op.type) {
      case 'prepare': return this.prepareInTx(op.leg);
      case 'commit': return this.commitInTx(op.txId);
      case 'abort': return this.abortInTx(op.txId);
    }
  }

  private prepareInTx(leg: Leg): Result<PrepareAction> {
    const existingRow = this.sql.leg.get(leg.txId, leg.kind) as Row | undefined;
    const txState = this.txState(leg.txId);
    const decision = decidePrepare({
      txState,
      existing: existingRow ? toLeg(existingRow) : undefined,
      account: this.account(leg.username),
      leg,
    });
    if (!decision.ok || decision.value === 'repeat') return decision;
    const nowMs = this.now();
    if (txState === undefined) this.sql.insertTx.run(leg.txId, 'prepared', nowMs, nowMs);
    this.sql.insertLeg.run(
      leg.txId, leg.kind, leg.username, leg.amountMinor, leg.currency, leg.counterpartyBank, leg.counterpartyUsername,
    );
    if (leg.kind === 'debit') {
      const held = this.sql.hold.run({ amount: leg.amountMinor, username: leg.username });
      assert(held.changes === 1, `hold of ${leg.amountMinor} on ${leg.username} failed after the funds check`);
    }
    return ok('insert');
  }

  private commitInTx(txId: string): TxState {
    const legs = (this.sql.legs.all(txId) as Row[]).map(toLeg);
    if (decideCommit(txId, this.txState(txId), legs.length) === 'none') return 'committed';
    const nowMs = this.now();
    for (const leg of legs) {
      const stmt = leg.kind === 'debit' ? this.sql.applyDebit : this.sql.applyCredit;
      const r = stmt.get({ amount: leg.amountMinor, username: leg.username }) as Row | undefined;
      assert(r !== undefined, `cannot apply ${leg.kind} leg of ${txId} to ${leg.username}: no account or no hold`);
      this.sql.insertHistory.run(
        leg.username, txId, leg.kind, leg.amountMinor, leg.currency, leg.counterpartyBank,
        leg.counterpartyUsername, r.balance_minor, nowMs,
      );
    }
    this.sql.setTxState.run('committed', nowMs, txId);
    return 'committed';
  }

  private abortInTx(txId: string): TxState {
    const state = this.txState(txId);
    const action = testBugs.abortReleasesSettledLeg && state !== undefined ? 'release' : decideAbort(txId, state);
    const nowMs = this.now();
    if (action === 'tombstone' && !testBugs.forgetAbortTombstone) this.sql.insertTx.run(txId, 'aborted', nowMs, nowMs);
    if (action === 'release') {
      for (const leg of (this.sql.legs.all(txId) as Row[]).map(toLeg)) {
        if (leg.kind !== 'debit') continue;
        const released = this.sql.release.run({ amount: leg.amountMinor, username: leg.username });
        assert(released.changes === 1, `hold of ${leg.amountMinor} on ${leg.username} for ${txId} is missing`);
      }
      this.sql.setTxState.run('aborted', nowMs, txId);
    }
    return 'aborted';
  }

  /** One page of an account's history, newest first, strictly older than `beforeSeq` if given. */
  history(username: string, limit: number, beforeSeq?: bigint): Result<HistoryPage> {
    assert(Number.isInteger(limit) && limit > 0, `history page size ${limit} must be a positive integer`);
    return this.db.transaction((): Result<HistoryPage> => {
      if (!this.account(username)) return fail('ACCOUNT_NOT_FOUND', `no account "${username}" at this bank`);
      // One extra row tells whether another page exists without a COUNT.
      const rows = (this.sql.historyPage.all(username, beforeSeq ?? 2n ** 63n - 1n, limit + 1) as Row[]).map(toHistory);
      const entries = rows.slice(0, limit);
      const last = entries[entries.length - 1];
      return ok({ entries, nextBeforeSeq: rows.length > limit && last ? last.seq : undefined });
    })();
  }

  /** Prepared transactions awaiting Commit or Abort, oldest first, at most `limit`. */
  inDoubt(limit: number): InDoubtTx[] {
    return this.db.transaction(() =>
      (this.sql.inDoubt.all(limit) as Row[]).map((r) => ({
        txId: r.id as string,
        createdAtMs: Number(r.created_at as bigint),
        legs: (this.sql.legs.all(r.id) as Row[]).map(toLeg),
      })),
    )();
  }

  /** Legs prepared here and not yet committed or aborted (the partial index transactions_prepared). */
  inDoubtLegCount(): number {
    return Number((this.sql.inDoubtLegs.get() as Row).n);
  }

  /** Ids of the transactions with a leg of `username` prepared here and not yet committed or aborted. */
  preparedTxIdsOf(username: string): string[] {
    return (this.sql.preparedOf.all(username) as Row[]).map((r) => r.tx_id as string);
  }

  /** Ids of transactions prepared before `beforeMs` and still undecided here, oldest first. */
  preparedBefore(beforeMs: number, limit: number): string[] {
    assert(Number.isInteger(limit) && limit > 0, 'preparedBefore: limit must be a positive integer');
    return (this.sql.preparedBefore.all(beforeMs, limit) as Row[]).map((r) => r.id as string);
  }

  /** Sums of balances and holds, overall and per currency (money conservation checks). */
  totals(): Totals {
    const byCurrency: Record<string, CurrencyTotals> = {};
    let accounts = 0;
    let balanceMinor = 0n;
    let heldMinor = 0n;
    for (const r of this.sql.totals.all() as Row[]) {
      const t = { accounts: Number(r.accounts), balanceMinor: r.balance as bigint, heldMinor: r.held as bigint };
      byCurrency[r.currency as string] = t;
      accounts += t.accounts;
      balanceMinor += t.balanceMinor;
      heldMinor += t.heldMinor;
    }
    return { accounts, balanceMinor, heldMinor, byCurrency };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

import path from 'node:path';
import Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { isName } from '../core/ids.js';
import { isCurrency } from '../core/money.js';
import { LEDGER_FILE, Ledger } from './ledger.js';

// Bulk data for benchmarks: a million accounts or ten million history rows in minutes, not days.
// `bin/bank add-user` hashes one password per account (argon2id, ~0.1 s each); here every account
// shares ONE precomputed hash and rows go in with large SQLite transactions. The file is first
// opened through Ledger (creating or checking the schema), then written with the Ledger's pragmas
// (WAL, synchronous=FULL, foreign keys on), so the result is an ordinary ledger. Offline only:
// the bank must not be running (SQLite would serialize us anyway, but a running bank's in-memory
// view would not expect the new rows mid-transfer).

/** Rows per SQLite transaction: large enough that fsyncs do not dominate, small enough to bound memory. */
export const BULK_ROWS_PER_TX = 50_000;

/** Upper bounds of one bulk command (a typo should not fill the disk). */
export const BULK_ACCOUNTS_MAX = 10_000_000;
export const BULK_HISTORY_ROWS_MAX = 100_000_000;

export interface BulkAccounts {
  /** Accounts are `${prefix}${i}` for i in [0, count). */
  readonly prefix: string;
  readonly count: number;
  readonly currency: string;
  readonly balanceMinor: bigint;
  /** One argon2id hash shared by every account (so all have the same password). */
  readonly passwordHash: string;
}

export interface BulkResult {
  /** Rows written now (existing accounts are kept as they are). */
  readonly inserted: number;
  readonly elapsedMs: number;
}

function openBulk(dataDir: string): Database.Database {
  // Ledger.open creates the folder and the schema, or refuses a file of another schema version.
  Ledger.open(dataDir).close();
  const db = new Database(path.join(dataDir, LEDGER_FILE));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.defaultSafeIntegers(true);
  return db;
}

export function accountName(prefix: string, i: number): string {
  return `${prefix}${i}`;
}

/** Inserts accounts prefix0..prefix{count-1}; already present usernames are left unchanged. */
export function bulkSeedAccounts(dataDir: string, spec: BulkAccounts, onProgress?: (done: number) => void): BulkResult {
  assert(Number.isInteger(spec.count) && spec.count > 0 && spec.count <= BULK_ACCOUNTS_MAX, `count must be 1..${BULK_ACCOUNTS_MAX}`);
  assert(isName(accountName(spec.prefix, spec.count - 1)), `prefix "${spec.prefix}" does not make valid user names`);
  assert(isCurrency(spec.currency), `unknown currency ${spec.currency}`);
  assert(spec.balanceMinor >= 0n, 'opening balance must not be negative');
  assert(spec.passwordHash.startsWith('$argon2id$'), 'password hash must be argon2id');
  const started = Date.now();
  const db = openBulk(dataDir);
  try {
    const insert = db.prepare(
      `INSERT INTO accounts (username, password_hash, currency, balance_minor, held_minor, created_at)
       VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (username) DO NOTHING`,
    );
    const batch = db.transaction((from: number, to: number, nowMs: number) => {
      let n = 0;
      for (let i = from; i < to; i++) {
        n += insert.run(accountName(spec.prefix, i), spec.passwordHash, spec.currency, spec.balanceMinor, nowMs).changes;
      }
      return n;
    });
    let inserted = 0;
    for (let from = 0; from < spec.count; from += BULK_ROWS_PER_TX) {
      const to = Math.min(spec.count, from + BULK_ROWS_PER_TX);
      inserted += batch.immediate(from, to, Date.now());
      onProgress?.(to);
    }
    return { inserted, elapsedMs: Date.now() - started };
  } finally {
    db.close();
  }
}

export interface BulkHistory {
  /** History rows to add; each comes with its committed transaction and its leg, as a real commit writes them. */
  readonly rows: number;
  /** Spread over the accounts prefix0..prefix{accounts-1} (which must exist). */
  readonly prefix: string;
  readonly accounts: number;
  /** Named as the counterparty of every synthetic movement. */
  readonly counterpartyBank: string;
}

/**
 * Adds `rows` synthetic committed movements of 1 minor unit, alternating credit and debit, spread
 * round-robin over the accounts. Balances are NOT changed (each row records the account's current
 * balance as balance-after), so money totals stay what they were: this only grows the tables and
 * indexes that the hot path writes to and reads from. Transaction ids are `fill-<bank>-<n>`.
 */
export function bulkFillHistory(dataDir: string, bank: string, spec: BulkHistory, onProgress?: (done: number) => void): BulkResult {
  assert(Number.isInteger(spec.rows) && spec.rows > 0 && spec.rows <= BULK_HISTORY_ROWS_MAX, `rows must be 1..${BULK_HISTORY_ROWS_MAX}`);
  assert(Number.isInteger(spec.accounts) && spec.accounts > 0, 'accounts must be a positive integer');
  assert(isName(spec.counterpartyBank), 'counterparty bank must be a name');
  const started = Date.now();
  const db = openBulk(dataDir);
  try {
    const first = Number(db.prepare(`SELECT COUNT(*) FROM transactions WHERE id LIKE 'fill-%'`).pluck().get());
    const account = db.prepare('SELECT currency, balance_minor FROM accounts WHERE username = ?');
    const insertTx = db.prepare(`INSERT INTO transactions (id, state, created_at, updated_at) VALUES (?, 'committed', ?, ?)`);
    const insertLeg = db.prepare(
      `INSERT INTO legs (tx_id, kind, username, amount_minor, currency, counterparty_bank, counterparty_username)
       VALUES (?, ?, ?, 1, ?, ?, ?)`,
    );
    const insertHistory = db.prepare(
      `INSERT INTO history (username, tx_id, direction, amount_minor, currency, counterparty_bank,
         counterparty_username, balance_after_minor, created_at)
       VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)`,
    );
    const cache = new Map<string, { currency: string; balance: bigint }>();
    const lookup = (username: string) => {
      let a = cache.get(username);
      if (!a) {
        const r = account.get(username) as { currency: string; balance_minor: bigint } | undefined;
        assert(r !== undefined, `account ${username} does not exist: seed the accounts first`);
        a = { currency: r.currency, balance: r.balance_minor };
        if (cache.size < 100_000) cache.set(username, a);
      }
      return a;
    };
    const batch = db.transaction((from: number, to: number, nowMs: number) => {
      for (let n = from; n < to; n++) {
        const username = accountName(spec.prefix, n % spec.accounts);
        const a = lookup(username);
        const txId = `fill-${bank}-${String(n).padStart(10, '0')}`;
        const kind = n % 2 === 0 ? 'credit' : 'debit';
        const other = accountName(spec.prefix, (n + 1) % spec.accounts);
        insertTx.run(txId, nowMs, nowMs);
        insertLeg.run(txId, kind, username, a.currency, spec.counterpartyBank, other);
        insertHistory.run(username, txId, kind, a.currency, spec.counterpartyBank, other, a.balance, nowMs);
      }
    });
    const end = first + spec.rows;
    for (let from = first; from < end; from += BULK_ROWS_PER_TX) {
      const to = Math.min(end, from + BULK_ROWS_PER_TX);
      batch.immediate(from, to, Date.now());
      onProgress?.(to - first);
    }
    return { inserted: spec.rows, elapsedMs: Date.now() - started };
  } finally {
    db.close();
  }
}

import { fail, ok, type Result } from '../core/errors.js';
import { isName } from '../core/ids.js';
import { formatAmount, isCurrency, parseAmount } from '../core/money.js';
import { bulkFillHistory, bulkSeedAccounts, type BulkResult } from './bulk-seed.js';
import type { InDoubtTx, Ledger, Totals } from './ledger.js';
import { hashPassword, PASSWORD_LENGTH_MAX_CHARS } from './passwords.js';

// Operator commands behind `bin/bank add-user | seed | in-doubt | total`.

export interface AddUserInput {
  readonly username: string;
  readonly currency: string;
  readonly balanceMinor: bigint;
  readonly password: string;
}

export type AddUserOutcome = 'created' | 'exists';

export async function addUser(ledger: Ledger, input: AddUserInput): Promise<Result<AddUserOutcome>> {
  if (!isName(input.username)) return fail('INVALID_ARGUMENT', `"${input.username}" is not a valid user name`);
  if (!isCurrency(input.currency)) return fail('INVALID_CURRENCY', `unknown currency "${input.currency}"`);
  if (input.balanceMinor < 0n) return fail('INVALID_AMOUNT', 'opening balance must not be negative');
  if (input.password.length === 0 || input.password.length > PASSWORD_LENGTH_MAX_CHARS) {
    return fail('INVALID_ARGUMENT', `password must have 1 to ${PASSWORD_LENGTH_MAX_CHARS} characters`);
  }
  // Skip the slow hash when the answer is known; createAccount still settles a race.
  if (ledger.account(input.username)) return ok('exists');
  const passwordHash = await hashPassword(input.password);
  return ok(
    ledger.createAccount({ username: input.username, passwordHash, currency: input.currency, balanceMinor: input.balanceMinor }),
  );
}

export interface DemoUser {
  readonly username: string;
  readonly currency: string;
  /** Decimal, as typed at the CLI. */
  readonly balance: string;
}

/** Demo accounts per bank; each password is "<username>-pass". */
export const DEMO_USERS: Readonly<Record<string, readonly DemoUser[]>> = {
  BankA: [
    { username: 'alice', currency: 'EUR', balance: '1000.00' },
    { username: 'carol', currency: 'EUR', balance: '500.00' },
  ],
  BankB: [
    { username: 'bob', currency: 'EUR', balance: '1000.00' },
    { username: 'dave', currency: 'EUR', balance: '250.00' },
  ],
};

export function demoPassword(username: string): string {
  return `${username}-pass`;
}

/** Adds the bank's demo users that are missing; returns what happened to each. */
export async function seed(ledger: Ledger, bank: string): Promise<{ username: string; outcome: AddUserOutcome }[]> {
  const done: { username: string; outcome: AddUserOutcome }[] = [];
  for (const u of DEMO_USERS[bank] ?? []) {
    const amount = parseAmount(u.balance, u.currency);
    if (!amount.ok) throw new Error(`demo user ${u.username}: ${amount.message}`);
    const r = await addUser(ledger, {
      username: u.username,
      currency: u.currency,
      balanceMinor: amount.value,
      password: demoPassword(u.username),
    });
    if (!r.ok) throw new Error(`demo user ${u.username}: ${r.message}`);
    done.push({ username: u.username, outcome: r.value });
  }
  return done;
}

export function formatInDoubt(list: readonly InDoubtTx[]): string {
  if (list.length === 0) return 'no prepared (in-doubt) transactions';
  const lines = [`${list.length} prepared (in-doubt) transaction${list.length === 1 ? '' : 's'}:`];
  for (const tx of list) {
    const legs = tx.legs.map((l) => {
      const arrow = l.kind === 'debit' ? '->' : '<-';
      return `${l.kind} ${l.username} ${formatAmount(l.amountMinor, l.currency)} ${l.currency} ${arrow} ${l.counterpartyBank}/${l.counterpartyUsername}`;
    });
    lines.push(`  ${tx.txId}  prepared ${new Date(tx.createdAtMs).toISOString()}  ${legs.join('; ')}`);
  }
  return lines.join('\n');
}

export function formatTotals(bank: string, t: Totals): string {
  const lines = [`${bank}: ${t.accounts} account${t.accounts === 1 ? '' : 's'}`];
  for (const [currency, c] of Object.entries(t.byCurrency)) {
    lines.push(`  ${currency}: balance ${formatAmount(c.balanceMinor, currency)}  held ${formatAmount(c.heldMinor, currency)}  (${c.accounts} accounts)`);
  }
  lines.push(`  total minor units: balance ${t.balanceMinor}  held ${t.heldMinor}`);
  return lines.join('\n');
}

export interface BulkSeedInput {
  readonly prefix: string;
  readonly count: number;
  readonly currency: string;
  readonly balanceMinor: bigint;
  /** Every seeded account gets this password (one argon2id hash, computed once). */
  readonly password: string;
}

/** `bin/bank bulk-seed`: many benchmark accounts sharing one password hash (src/bank/bulk-seed.ts). */
export async function bulkSeed(dataDir: string, input: BulkSeedInput, onProgress?: (done: number) => void): Promise<Result<BulkResult>> {
  if (!Number.isInteger(input.count) || input.count <= 0) return fail('INVALID_ARGUMENT', '--count must be a positive integer');
  if (!isName(`${input.prefix}${input.count - 1}`)) return fail('INVALID_ARGUMENT', `prefix "${input.prefix}" does not make valid user names`);
  if (!isCurrency(input.currency)) return fail('INVALID_CURRENCY', `unknown currency "${input.currency}"`);
  if (input.balanceMinor < 0n) return fail('INVALID_AMOUNT', 'opening balance must not be negative');
  if (input.password.length === 0 || input.password.length > PASSWORD_LENGTH_MAX_CHARS) {
    return fail('INVALID_ARGUMENT', `password must have 1 to ${PASSWORD_LENGTH_MAX_CHARS} characters`);
  }
  const passwordHash = await hashPassword(input.password);
  return ok(bulkSeedAccounts(dataDir, { ...input, passwordHash }, onProgress));
}

export interface FillHistoryInput {
  readonly rows: number;
  readonly prefix: string;
  readonly accounts: number;
  readonly counterpartyBank: string;
}

/** `bin/bank fill-history`: synthetic committed history rows, balances unchanged (src/bank/bulk-seed.ts). */
export function fillHistory(dataDir: string, bank: string, input: FillHistoryInput, onProgress?: (done: number) => void): Result<BulkResult> {
  if (!Number.isInteger(input.rows) || input.rows <= 0) return fail('INVALID_ARGUMENT', '--rows must be a positive integer');
  if (!Number.isInteger(input.accounts) || input.accounts <= 0) return fail('INVALID_ARGUMENT', '--count must be a positive integer');
  if (!isName(input.counterpartyBank)) return fail('INVALID_ARGUMENT', '--counterparty must be a bank name');
  return ok(bulkFillHistory(dataDir, bank, input, onProgress));
}

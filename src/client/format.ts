import type { AccountRef } from '../core/transfer.js';
import { formatAmount } from '../core/money.js';
import type { AccountBalance, AccountInfo, HistoryEntryInfo, HistoryPage, TransferInfo } from './types.js';

// Output at the CLI edge. Human text shows decimals with the currency ("12.50 EUR"); JSON carries
// minor units as strings (bigint-safe) next to the formatted decimal.

export function money(minor: bigint, currency: string): string {
  return `${formatAmount(minor, currency)} ${currency}`;
}

export function accountName(a: AccountRef): string {
  return `${a.bank}/${a.username}`;
}

/** UTC, seconds precision: "2025-03-01 14:05:09Z". */
export function timeText(d: Date | undefined): string {
  return d ? `${d.toISOString().slice(0, 19).replace('T', ' ')}Z` : '-';
}

export function balanceText(a: AccountBalance): string {
  const lines = [`${accountName(a)}`, `balance:   ${money(a.balanceMinor, a.currency)}`];
  lines.push(`available: ${money(a.availableMinor, a.currency)}`);
  return lines.join('\n');
}

/** One line saying what happened to a transfer. */
export function transferOutcomeText(t: TransferInfo): string {
  const what = `${money(t.amountMinor, t.currency)} from ${accountName(t.from)} to ${accountName(t.to)}`;
  switch (t.status) {
    case 'committed':
      return `committed: ${what} (transaction ${t.transactionId})`;
    case 'pending':
      return `pending: ${what} (transaction ${t.transactionId}); check again with: bin/client status ${t.idempotencyKey}`;
    case 'aborted':
      return `aborted: ${what}: ${t.failure?.message ?? 'no reason given'} (${t.failure?.reason ?? 'UNKNOWN'})`;
  }
}

export function transferDetailText(t: TransferInfo): string {
  const rows: [string, string][] = [
    ['key', t.idempotencyKey],
    ['transaction', t.transactionId],
    ['status', t.status],
    ['amount', money(t.amountMinor, t.currency)],
    ['from', accountName(t.from)],
    ['to', accountName(t.to)],
    ['created', timeText(t.createdAt)],
  ];
  if (t.failure) rows.push(['failure', `${t.failure.message} (${t.failure.reason})`]);
  return rows.map(([k, v]) => `${`${k}:`.padEnd(13)}${v}`).join('\n');
}

export function historyEntryText(e: HistoryEntryInfo): string {
  const signed = `${e.direction === 'debit' ? '-' : '+'}${money(e.amountMinor, e.currency)}`;
  const party = `${e.direction === 'debit' ? 'to  ' : 'from'} ${accountName(e.counterparty)}`;
  return `${timeText(e.createdAt)}  ${signed.padStart(16)}  ${party.padEnd(30)}  balance ${money(e.balanceAfterMinor, e.currency)}  ${e.transactionId}`;
}

export function historyText(entries: readonly HistoryEntryInfo[]): string {
  return entries.length === 0 ? 'no transactions' : entries.map(historyEntryText).join('\n');
}

// JSON views: every bigint becomes a string of minor units, with a formatted decimal alongside.

export function accountJson(a: AccountInfo): Record<string, string> {
  return { bank: a.bank, username: a.username, currency: a.currency };
}

export function balanceJson(a: AccountBalance): Record<string, string> {
  return {
    ...accountJson(a),
    balanceMinor: a.balanceMinor.toString(),
    balance: formatAmount(a.balanceMinor, a.currency),
    availableMinor: a.availableMinor.toString(),
    available: formatAmount(a.availableMinor, a.currency),
  };
}

export function transferJson(t: TransferInfo): Record<string, unknown> {
  return {
    idempotencyKey: t.idempotencyKey,
    transactionId: t.transactionId,
    status: t.status,
    from: { bank: t.from.bank, username: t.from.username },
    to: { bank: t.to.bank, username: t.to.username },
    amountMinor: t.amountMinor.toString(),
    amount: formatAmount(t.amountMinor, t.currency),
    currency: t.currency,
    createTime: t.createdAt?.toISOString() ?? null,
    ...(t.failure ? { failure: { reason: t.failure.reason, message: t.failure.message } } : {}),
  };
}

export function historyEntryJson(e: HistoryEntryInfo): Record<string, unknown> {
  return {
    transactionId: e.transactionId,
    direction: e.direction,
    amountMinor: e.amountMinor.toString(),
    amount: formatAmount(e.amountMinor, e.currency),
    currency: e.currency,
    counterparty: { bank: e.counterparty.bank, username: e.counterparty.username },
    balanceAfterMinor: e.balanceAfterMinor.toString(),
    balanceAfter: formatAmount(e.balanceAfterMinor, e.currency),
    createTime: e.createdAt?.toISOString() ?? null,
  };
}

export function historyJson(page: HistoryPage): Record<string, unknown> {
  return { entries: page.entries.map(historyEntryJson), nextPageToken: page.nextPageToken };
}

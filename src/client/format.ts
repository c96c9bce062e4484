import type { AccountRef } from '../core/transfer.js';
import { formatAmount } from '../core/money.js';
import { isFinalState, type OutboxEntry } from './outbox.js';
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

// The offline outbox (bin/client queue ...).

/** What an outbox entry's state means, in a few words. */
export function outboxStateText(e: OutboxEntry): string {
  switch (e.state) {
    case 'pending':
      return e.sent ? 'in doubt (sent, answer lost; asking the gateway)' : 'queued (not sent yet)';
    case 'needs_login':
      return `needs login as ${accountName(e.owner)}${e.sent ? ' (sent before, answer lost)' : ''}`;
    case 'committed':
      return 'committed';
    case 'failed':
      return `refused: ${e.failure?.message ?? 'no reason given'} (${e.failure?.reason ?? 'UNKNOWN'})`;
    case 'cancelled':
      return 'cancelled (never sent)';
    case 'expired':
      return `expired: ${e.failure?.message ?? 'not sent in time'}`;
  }
}

/** One line per entry for `queue list`. */
export function outboxEntryLine(e: OutboxEntry): string {
  const what = `${money(e.amountMinor, e.currency)} ${accountName(e.owner)} -> ${accountName(e.to)}`;
  return `#${String(e.id).padEnd(4)} ${what.padEnd(44)} ${outboxStateText(e)}; attempts ${e.attempts}; key ${e.idempotencyKey}`;
}

export function outboxListText(entries: readonly OutboxEntry[]): string {
  return entries.length === 0 ? 'the offline queue is empty' : entries.map(outboxEntryLine).join('\n');
}

export function outboxEntryDetailText(e: OutboxEntry, maxAgeMs: number): string {
  const rows: [string, string][] = [
    ['entry', `#${e.id}`],
    ['key', e.idempotencyKey],
    ['state', outboxStateText(e)],
    ['amount', money(e.amountMinor, e.currency)],
    ['from', accountName(e.owner)],
    ['to', accountName(e.to)],
    ['queued', timeText(new Date(e.createdAtMs))],
    ['attempts', String(e.attempts)],
    ['last try', e.lastAttemptAtMs === undefined ? '-' : timeText(new Date(e.lastAttemptAtMs))],
  ];
  if (!isFinalState(e.state)) rows.push(['gives up', `${timeText(new Date(e.createdAtMs + maxAgeMs))} if never sent by then`]);
  if (e.lastError && !isFinalState(e.state)) rows.push(['last error', `${e.lastError.message} (${e.lastError.reason})`]);
  if (e.transactionId) rows.push(['transaction', e.transactionId]);
  if (e.finishedAtMs !== undefined) rows.push(['finished', timeText(new Date(e.finishedAtMs))]);
  rows.push(['cancellable', e.sent || isFinalState(e.state) ? 'no' : 'yes']);
  return rows.map(([k, v]) => `${`${k}:`.padEnd(13)}${v}`).join('\n');
}

/** One line when the worker records a final outcome. */
export function outboxOutcomeText(e: OutboxEntry): string {
  const what = `${money(e.amountMinor, e.currency)} from ${accountName(e.owner)} to ${accountName(e.to)}`;
  switch (e.state) {
    case 'committed':
      return `committed: ${what} (transaction ${e.transactionId})`;
    case 'failed':
      return `refused: ${what}: ${e.failure?.message ?? 'no reason given'} (${e.failure?.reason ?? 'UNKNOWN'})`;
    default:
      return `${e.state}: ${what}: ${outboxStateText(e)}`;
  }
}

export function outboxEntryJson(e: OutboxEntry, maxAgeMs: number): Record<string, unknown> {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    id: e.id,
    idempotencyKey: e.idempotencyKey,
    state: e.state,
    sent: e.sent,
    inDoubt: e.sent && !isFinalState(e.state),
    cancellable: !e.sent && !isFinalState(e.state),
    from: { bank: e.owner.bank, username: e.owner.username },
    to: { bank: e.to.bank, username: e.to.username },
    amountMinor: e.amountMinor.toString(),
    amount: formatAmount(e.amountMinor, e.currency),
    currency: e.currency,
    attempts: e.attempts,
    createTime: iso(e.createdAtMs),
    expireTime: isFinalState(e.state) ? null : iso(e.createdAtMs + maxAgeMs),
    lastAttemptTime: iso(e.lastAttemptAtMs),
    lastError: e.lastError && !isFinalState(e.state) ? { ...e.lastError } : null,
    finishTime: iso(e.finishedAtMs),
    transactionId: e.transactionId ?? null,
    failure: e.failure ? { ...e.failure } : null,
  };
}

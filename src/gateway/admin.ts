import fs from 'node:fs';
import path from 'node:path';
import { formatAmount } from '../core/money.js';
import { GATEWAY_DB_FILE, openGatewayStoreReadOnly, type StoredTransfer } from './store.js';

// Operator command behind `bin/gateway unfinished`: the transfers the gateway has not finished,
// read from its store (read-only, safe next to a running gateway). 'preparing' is undecided (the
// next start aborts it); 'committing'/'aborting' is decided and waits for the banks listed.

export interface UnfinishedEntry {
  readonly transactionId: string;
  readonly idempotencyKey: string;
  readonly state: StoredTransfer['state'];
  readonly from: string;
  readonly to: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  /** Banks whose Commit/Abort is not acknowledged yet. */
  readonly awaiting: readonly string[];
  readonly failureReason?: string;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}

/** Unfinished transfers, oldest first, at most `limit`; empty when the gateway never ran here. */
export function listUnfinished(dataDir: string, limit: number): UnfinishedEntry[] {
  if (!fs.existsSync(path.join(dataDir, GATEWAY_DB_FILE))) return [];
  const store = openGatewayStoreReadOnly(dataDir);
  try {
    return store.listUnfinished(limit).map((t) => ({
      transactionId: t.tx.id,
      idempotencyKey: t.tx.idempotencyKey,
      state: t.state,
      from: `${t.tx.from.username}@${t.tx.from.bank}`,
      to: `${t.tx.to.username}@${t.tx.to.bank}`,
      amountMinor: t.tx.amountMinor,
      currency: t.tx.currency,
      awaiting: t.awaiting,
      ...(t.failure ? { failureReason: t.failure.reason } : {}),
      createdAtMs: t.tx.createdAtMs,
      updatedAtMs: t.updatedAtMs,
    }));
  } finally {
    store.close();
  }
}

export function formatUnfinished(list: readonly UnfinishedEntry[]): string {
  if (list.length === 0) return 'no unfinished transfers';
  const lines = [`${list.length} unfinished transfer${list.length === 1 ? '' : 's'}:`];
  for (const t of list) {
    const waiting = t.state === 'preparing' ? 'undecided' : `waiting for ${t.awaiting.join(', ') || 'completion'}`;
    lines.push(`  ${t.transactionId}  ${t.state.padEnd(10)} ${t.from} -> ${t.to} `
      + `${formatAmount(t.amountMinor, t.currency)} ${t.currency}  ${waiting}${t.failureReason ? ` (${t.failureReason})` : ''}`
      + `  since ${new Date(t.createdAtMs).toISOString()}`);
  }
  return lines.join('\n');
}

import fs from 'node:fs';
import type { Config } from '../config/schema.js';
import { formatAmount } from '../core/money.js';
import { openTransferLogReader, transferLogLocation } from './store/open.js';
import type { StoredTransfer } from './store/transfer-log.js';

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
export async function listUnfinished(gateway: Config['gateway'], limit: number): Promise<UnfinishedEntry[]> {
  if (gateway.store === 'sqlite' && !fs.existsSync(transferLogLocation(gateway))) return [];
  const store = await openTransferLogReader(gateway);
  try {
    return (await store.listUnfinished(limit)).map((t) => ({
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
    await store.close();
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

import { randomUUID } from 'node:crypto';
import { sleep, systemClock } from '../../core/clock.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { ClientFailure } from '../failure.js';
import { outboxEntryJson, outboxStateText, transferJson, transferOutcomeText } from '../format.js';
import { isFinalState, type NewOutboxEntry, type OutboxEntry } from '../outbox.js';
import type { OutboxWorker } from '../outbox-worker.js';
import type { TransferInfo } from '../types.js';
import { amountOf, checkCurrency, checkKey, checkName, expectArgs, type CommandFlags } from './args.js';

// bin/client transfer TO_BANK TO_USER AMOUNT [--key UUID] [--currency CUR]
//
// Every transfer goes through the offline outbox: it is written there (with its idempotency key)
// before the first send, then sent by the outbox worker, older payments of the same account first.
// If the gateway cannot be reached (or its answer is lost) the payment stays queued and the command
// exits 5; `bin/client queue run` or the interactive client sends it later with the same key.

export async function transferCommand(ctx: CliContext, args: readonly string[], flags: CommandFlags): Promise<number> {
  const [toBank, toUsername, amountText] = expectArgs(args, 3, 'transfer TO_BANK TO_USER AMOUNT [--key UUID] [--currency CUR]') as [string, string, string];
  checkName(toBank, 'bank name');
  checkName(toUsername, 'user name');
  const idempotencyKey = flags.key === undefined ? randomUUID() : checkKey(flags.key);
  if (flags.currency !== undefined) checkCurrency(flags.currency);
  // Not logged in: refused at once, nothing is queued.
  const session = ctx.requireSession();
  const currency = flags.currency ?? session.account.currency;
  const amountMinor = amountOf(amountText, currency);
  const owner = { bank: session.account.bank, username: session.account.username };
  const worker = ctx.outboxWorker((event) => {
    // Older payments sent first (FIFO) are reported as they finish.
    if (event.type === 'finished' && event.entry.idempotencyKey !== idempotencyKey) {
      ctx.note(`[queue] #${event.entry.id} ${outboxStateText(event.entry)}: key ${event.entry.idempotencyKey}`);
    }
  });
  const outcome = await sendThroughOutbox(ctx, worker, { idempotencyKey, owner, to: { bank: toBank, username: toUsername }, amountMinor, currency },
    // Shown before sending, so the user can look the transfer up even if this run is cut short.
    () => ctx.note(`key: ${idempotencyKey}`));
  return reportOutcome(ctx, outcome);
}

export interface ForegroundOutcome {
  /** The entry as last known. */
  readonly entry: OutboxEntry;
  /** The gateway's view, when this run received it. */
  readonly transfer?: TransferInfo;
  /** Another process holds the outbox and is sending it. */
  readonly busyPid?: number;
}

/**
 * Writes the payment to the outbox (durably, before any send), then lets the worker send the
 * owner's queue up to it, for at most client.outboxResumeMaxMs. If another process is sending the
 * queue, waits for that one to finish the entry (same bound).
 */
export async function sendThroughOutbox(ctx: CliContext, worker: OutboxWorker, request: NewOutboxEntry,
  onQueued?: (entry: OutboxEntry) => void): Promise<ForegroundOutcome> {
  const { entry } = ctx.outbox().add(request, systemClock.nowMs());
  onQueued?.(entry);
  if (isFinalState(entry.state)) return { entry };
  let latest = entry;
  let transfer: TransferInfo | undefined;
  const stop = worker.subscribe((event) => {
    if (event.entry.id !== entry.id) return;
    latest = event.entry;
    if (event.type === 'finished' && event.transfer) transfer = event.transfer;
  });
  try {
    const deadline = systemClock.nowMs() + ctx.config.client.outboxResumeMaxMs;
    // Bounded by the deadline.
    for (;;) {
      const pass = await worker.pass(deadline);
      latest = ctx.outbox().get(entry.id) ?? latest;
      const result = { entry: latest, ...(transfer ? { transfer } : {}) };
      if (pass.kind !== 'busy') return result;
      if (isFinalState(latest.state) || systemClock.nowMs() >= deadline) return { ...result, busyPid: pass.pid };
      await sleep(systemClock, ctx.config.client.outboxRetryIntervalMs);
    }
  } finally {
    stop();
  }
}

/** Prints what happened to a payment sent in the foreground; failures become ClientFailures. */
export function reportOutcome(ctx: CliContext, outcome: ForegroundOutcome): number {
  const { entry } = outcome;
  const key = entry.idempotencyKey;
  const extra = { idempotencyKey: key, outboxId: String(entry.id) };
  switch (entry.state) {
    case 'committed': {
      const transfer = outcome.transfer ?? transferOfEntry(entry);
      ctx.print(transferOutcomeText(transfer), { transfer: transferJson(transfer) });
      return EXIT.OK;
    }
    case 'failed': {
      const failure = entry.failure!;
      throw new ClientFailure(failure.code, failure.reason, `transfer ${key} refused: ${failure.message}`, extra);
    }
    case 'expired':
      throw new ClientFailure('DEADLINE_EXCEEDED', 'OUTBOX_EXPIRED', `transfer ${key} expired in the offline queue: ${entry.failure?.message ?? ''}`, extra);
    case 'cancelled':
      throw new ClientFailure('FAILED_PRECONDITION', 'OUTBOX_CANCELLED', `transfer ${key} was cancelled before it was sent`, extra);
    case 'needs_login': {
      const why = entry.lastError;
      throw new ClientFailure('UNAUTHENTICATED', why?.reason ?? 'NOT_LOGGED_IN',
        `payment #${entry.id} (key ${key}) is kept in the offline queue and will be sent with the same key after you log in `
          + `(bin/client login ${entry.owner.bank} ${entry.owner.username}), or cancel it with \`bin/client queue cancel ${entry.id}\`; `
          + `${why?.message ?? 'not logged in'}; log in again`, extra);
    }
    case 'pending':
      ctx.print(queuedText(entry, outcome.busyPid), { queued: outboxEntryJson(entry, ctx.config.client.outboxMaxAgeMs) });
      return EXIT.QUEUED;
  }
}

export function queuedText(entry: OutboxEntry, busyPid?: number): string {
  const key = entry.idempotencyKey;
  const lines = [`queued: will be sent when the gateway is reachable; run \`bin/client queue run\` or keep the interactive client open`,
    `payment #${entry.id}, key ${key}: ${outboxStateText(entry)}`];
  if (entry.lastError) lines.push(`last attempt: ${entry.lastError.message} (${entry.lastError.reason})`);
  if (entry.sent) {
    lines.push(`it may already have reached the gateway, so it cannot be cancelled; check with \`bin/client status ${key}\` (it is never applied twice)`);
  } else {
    lines.push(`cancel it with \`bin/client queue cancel ${entry.id}\``);
  }
  if (busyPid !== undefined) lines.push(`another client (pid ${busyPid}) is sending the queue now`);
  return lines.join('\n');
}

function transferOfEntry(entry: OutboxEntry): TransferInfo {
  return {
    transactionId: entry.transactionId ?? '',
    idempotencyKey: entry.idempotencyKey,
    from: entry.owner,
    to: entry.to,
    amountMinor: entry.amountMinor,
    currency: entry.currency,
    status: 'committed',
  };
}

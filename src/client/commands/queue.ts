import type { CliContext } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { ClientFailure, usageFailure } from '../failure.js';
import { accountName, money, outboxEntryDetailText, outboxEntryJson, outboxListText, outboxOutcomeText } from '../format.js';
import { isFinalState, type OutboxEntry } from '../outbox.js';
import type { OutboxEvent, OutboxWorker, RunResult } from '../outbox-worker.js';
import { expectArgs, type CommandFlags } from './args.js';

// bin/client queue list | show ID | cancel ID | run [--until-empty] [--timeout-ms N]
// The offline outbox: payments waiting to be sent, in doubt, or finished (kept for a while).

export const QUEUE_USAGE = 'queue list | queue show ID | queue cancel ID | queue run [--until-empty] [--timeout-ms N]';

/** Largest --timeout-ms accepted (one week). */
export const QUEUE_RUN_TIMEOUT_MAX_MS = 7 * 24 * 3600 * 1000;

export async function queueCommand(ctx: CliContext, args: readonly string[], flags: CommandFlags): Promise<number> {
  const [sub, ...rest] = args;
  const runOnly = flags['until-empty'] !== undefined || flags['timeout-ms'] !== undefined;
  if (runOnly && sub !== 'run') throw usageFailure('--until-empty and --timeout-ms are options of `queue run`');
  switch (sub) {
    case 'list':
      expectArgs(rest, 0, 'queue list');
      return listQueue(ctx);
    case 'show':
      return showEntry(ctx, expectArgs(rest, 1, 'queue show ID')[0]!);
    case 'cancel':
      return cancelEntry(ctx, expectArgs(rest, 1, 'queue cancel ID')[0]!);
    case 'run':
      expectArgs(rest, 0, 'queue run [--until-empty] [--timeout-ms N]');
      return runQueue(ctx, flags);
    default:
      throw usageFailure(`usage: bin/client ${QUEUE_USAGE}`);
  }
}

function listQueue(ctx: CliContext): number {
  const entries = ctx.existingOutbox()?.list() ?? [];
  const maxAge = ctx.config.client.outboxMaxAgeMs;
  const waiting = entries.filter((e) => !isFinalState(e.state)).length;
  const summary = `${waiting} waiting, ${entries.length - waiting} finished (kept: client.outboxHistoryMax=${ctx.config.client.outboxHistoryMax})`;
  ctx.print(entries.length === 0 ? outboxListText(entries) : `${outboxListText(entries)}\n${summary}`,
    // waiting: the outbox depth (payments not yet final), next to its bound, for monitoring scripts.
    { entries: entries.map((e) => outboxEntryJson(e, maxAge)), waiting, maxEntries: ctx.config.client.outboxMaxEntries });
  return EXIT.OK;
}

/** ID is the entry number (#N) or its idempotency key. */
function findEntry(ctx: CliContext, id: string): OutboxEntry {
  const outbox = ctx.existingOutbox();
  const number = /^#?\d{1,12}$/.test(id) ? Number(id.replace('#', '')) : undefined;
  const entry = number !== undefined ? outbox?.get(number) : outbox?.byKey(id);
  if (!entry) throw new ClientFailure('NOT_FOUND', 'OUTBOX_ENTRY_NOT_FOUND', `no queued payment ${number !== undefined ? `#${number}` : id}; see bin/client queue list`);
  return entry;
}

function showEntry(ctx: CliContext, id: string): number {
  const entry = findEntry(ctx, id);
  const maxAge = ctx.config.client.outboxMaxAgeMs;
  ctx.print(outboxEntryDetailText(entry, maxAge), { entry: outboxEntryJson(entry, maxAge) });
  return EXIT.OK;
}

function cancelEntry(ctx: CliContext, id: string): number {
  const entry = findEntry(ctx, id);
  const cancelled = ctx.outbox().cancel(entry.id, Date.now());
  ctx.print(`cancelled payment #${cancelled.id} (key ${cancelled.idempotencyKey}); it was never sent`,
    { entry: outboxEntryJson(cancelled, ctx.config.client.outboxMaxAgeMs) });
  return EXIT.OK;
}

function timeoutOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= QUEUE_RUN_TIMEOUT_MAX_MS)) throw usageFailure(`--timeout-ms must be a whole number from 1 to ${QUEUE_RUN_TIMEOUT_MAX_MS}`);
  return n;
}

/** Prints worker events as lines; repeated "still waiting" lines for the same cause are shown once. */
export function eventPrinter(write: (line: string) => void, retryIntervalMs: number): (event: OutboxEvent) => void {
  const lastWait = new Map<number, string>();
  return (event) => {
    const e = event.entry;
    const what = `#${e.id} (key ${e.idempotencyKey})`;
    switch (event.type) {
      case 'sending':
        lastWait.delete(e.id);
        write(`sending ${what}: attempt ${e.attempts}, ${money(e.amountMinor, e.currency)} from ${accountName(e.owner)} to ${accountName(e.to)}`);
        break;
      case 'resolving':
        write(`asking the gateway about ${what}: sent before, answer lost`);
        break;
      case 'finished':
        lastWait.delete(e.id);
        write(`${what} ${outboxOutcomeText(e)}`);
        break;
      case 'waiting': {
        const cause = event.error.reason;
        if (lastWait.get(e.id) === cause) break;
        lastWait.set(e.id, cause);
        write(`${what} still queued: ${event.error.message} (${event.error.reason}); retrying every ${retryIntervalMs} ms`);
        break;
      }
      case 'needs_login':
        lastWait.delete(e.id);
        write(`${what} needs login as ${accountName(e.owner)}: ${event.error.message} (${event.error.reason}); it is kept and sent after \`bin/client login\``);
        break;
    }
  };
}

async function runQueue(ctx: CliContext, flags: CommandFlags): Promise<number> {
  const timeoutMs = timeoutOf(flags['timeout-ms']);
  const untilEmpty = flags['until-empty'] === true;
  const touched = new Map<number, OutboxEntry>();
  const print = eventPrinter((line) => ctx.note(line), ctx.config.client.outboxRetryIntervalMs);
  const worker: OutboxWorker = ctx.outboxWorker((event) => {
    touched.set(event.entry.id, event.entry);
    print(event);
  });
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: RunResult;
  try {
    ctx.note(`sending the offline queue${untilEmpty ? ' until it is empty' : ''}${timeoutMs ? ` (at most ${timeoutMs} ms)` : ''}; Ctrl-C stops`);
    result = await worker.run({
      untilEmpty,
      ...(timeoutMs !== undefined ? { deadlineMs: Date.now() + timeoutMs } : {}),
      signal: stop.signal,
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const outbox = ctx.outbox();
  const waiting = outbox.waiting();
  const needsLogin = waiting.filter((e) => e.state === 'needs_login');
  const pending = waiting.filter((e) => e.state === 'pending');
  const maxAge = ctx.config.client.outboxMaxAgeMs;
  const lines: string[] = [];
  let code: number = EXIT.OK;
  if (result.last.kind === 'busy') {
    lines.push(`another client (pid ${result.last.pid}) is sending the queue; ${waiting.length} payments waiting`);
    code = waiting.length > 0 ? EXIT.QUEUED : EXIT.OK;
  } else if (needsLogin.length > 0 && pending.length === 0) {
    const owners = [...new Set(needsLogin.map((e) => accountName(e.owner)))].join(', ');
    lines.push(`${needsLogin.length} payments need a login as ${owners}: run bin/client login BANK USER (they are sent with the same keys)`);
    code = EXIT.AUTH;
  } else if (waiting.length > 0) {
    lines.push(`${waiting.length} payments still queued; run \`bin/client queue run\` again when the gateway is reachable`);
    code = EXIT.QUEUED;
  } else {
    lines.push('the offline queue is empty');
  }
  ctx.print(lines.join('\n'), {
    finished: [...touched.values()].filter((e) => isFinalState(e.state)).map((e) => outboxEntryJson(outbox.get(e.id) ?? e, maxAge)),
    waiting: waiting.map((e) => outboxEntryJson(e, maxAge)),
    stopped: result.stopped,
  });
  return code;
}

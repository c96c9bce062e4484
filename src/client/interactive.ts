import { randomUUID } from 'node:crypto';
import { isName } from '../core/ids.js';
import { endSession } from './commands/logout.js';
import { amountOf } from './commands/args.js';
import { loginAndSave, loginText } from './commands/login.js';
import { eventPrinter } from './commands/queue.js';
import { reportOutcome, sendThroughOutbox } from './commands/transfer.js';
import type { CliContext } from './context.js';
import { exitCodeOf, EXIT } from './exit-codes.js';
import { ClientFailure, usageFailure } from './failure.js';
import { balanceText, historyText, outboxListText } from './format.js';
import type { LineReader } from './lines.js';
import { isFinalState } from './outbox.js';
import type { OutboxWorker } from './outbox-worker.js';

// The menu-driven client: bin/client [BANK USER PASSWORD]. Logs in (asking for what is missing),
// then loops over a numbered menu. Reads stdin line by line, so piped input drives it as well as a
// person does. Ends on "4", at end of input, or when the session stops being valid.
// While it runs, the offline queue is sent in the background (every client.outboxRetryIntervalMs)
// and each outcome is printed as it arrives ("[queue] ..."); "5" shows the queue.

/** Entries per history page in the menu. */
export const MENU_HISTORY_PAGE_SIZE = 10;

/** Finished entries shown by the queue menu item (the waiting ones are all shown). */
export const MENU_QUEUE_FINISHED_SHOWN = 5;

const MENU = '\n1) balance  2) transfer  3) history  4) logout and quit  5) offline queue';

/** The background sender of the interactive client. */
interface Background {
  readonly worker: OutboxWorker;
  /** The entry the menu is sending itself (its events are not printed twice). */
  foreground: number | undefined;
  stop(): Promise<void>;
}

function startBackground(ctx: CliContext, say: (t: string) => void): Background {
  const print = eventPrinter((line) => say(`[queue] ${line}`), ctx.config.client.outboxRetryIntervalMs);
  let foreground: number | undefined;
  const worker = ctx.outboxWorker((event) => {
    if (event.entry.id !== foreground) print(event);
  });
  const abort = new AbortController();
  let failure: { error: unknown } | undefined;
  const loop = worker.run({ untilEmpty: false, signal: abort.signal }).then(
    () => undefined,
    (error: unknown) => {
      failure = { error };
    },
  );
  return {
    worker,
    get foreground() {
      return foreground;
    },
    set foreground(id: number | undefined) {
      foreground = id;
    },
    async stop() {
      abort.abort();
      await loop;
      // A failure of the loop is a bug (expected outcomes are values): surface it.
      if (failure) throw failure.error;
    },
  };
}

export async function runInteractive(ctx: CliContext, args: readonly string[]): Promise<number> {
  if (args.length > 3) throw usageFailure('usage: bin/client [BANK USER PASSWORD]');
  const out = ctx.io.stdout;
  const lines = ctx.lines(out);
  const say = (text: string) => out.write(`${text}\n`);

  const bank = args[0] ?? (await ask(lines, 'bank: '));
  const username = args[1] ?? (await ask(lines, 'username: '));
  const password = args[2] ?? (await lines.secret('password: '));
  if (password === undefined) throw usageFailure('input ended before the password');
  for (const [value, what] of [[bank, 'bank name'], [username, 'user name']] as const) {
    if (!isName(value)) throw usageFailure(`"${value}" is not a valid ${what}`);
  }
  const login = await loginAndSave(ctx, bank, username, password);
  say(loginText(login));
  const currency = login.account.currency;
  const outbox = ctx.outbox();
  if (outbox.waitingCount() > 0) say(`resuming the offline queue: ${outbox.waitingCount()} payments waiting`);
  const background = startBackground(ctx, say);
  try {
    // Resume at start: the first pass is awaited, so its outcomes come before the menu.
    await background.worker.pass(Date.now() + ctx.config.client.outboxResumeMaxMs);
    return await menuLoop(ctx, lines, say, currency, background);
  } finally {
    await background.stop();
    const left = outbox.waitingCount();
    if (left > 0) say(`${left} payments are still in the offline queue; they are sent by \`bin/client queue run\` or the next interactive session`);
  }
}

async function menuLoop(ctx: CliContext, lines: LineReader, say: (t: string) => void, currency: string, background: Background): Promise<number> {
  for (;;) {
    say(MENU);
    const choice = await lines.question('choice: ');
    if (choice === undefined) return EXIT.OK;
    try {
      switch (choice.trim()) {
        case '1':
          say(balanceText(await ctx.authed((gateway) => gateway.balance())));
          break;
        case '2':
          await transferMenu(ctx, lines, say, currency, background);
          break;
        case '3':
          await historyMenu(ctx, lines, say);
          break;
        case '4':
        case 'q':
        case 'quit': {
          await background.stop();
          const ended = await endSession(ctx);
          say(ended.message);
          return EXIT.OK;
        }
        case '5':
          say(queueMenuText(ctx));
          break;
        default:
          say('choose 1, 2, 3, 4 or 5');
      }
    } catch (err) {
      if (!(err instanceof ClientFailure)) throw err;
      ctx.printError(err);
      // Without a valid session every further choice would fail the same way.
      if (exitCodeOf(err) === EXIT.AUTH) return EXIT.AUTH;
    }
  }
}

async function ask(lines: LineReader, prompt: string): Promise<string> {
  const answer = await lines.question(prompt);
  if (answer === undefined) throw usageFailure(`input ended at "${prompt.trim()}"`);
  return answer.trim();
}

async function transferMenu(ctx: CliContext, lines: LineReader, say: (t: string) => void, currency: string, background: Background): Promise<void> {
  const toBank = await ask(lines, 'to bank: ');
  if (!isName(toBank)) throw usageFailure(`"${toBank}" is not a valid bank name`);
  const toUsername = await ask(lines, 'to username: ');
  if (!isName(toUsername)) throw usageFailure(`"${toUsername}" is not a valid user name`);
  const amountMinor = amountOf(await ask(lines, `amount (${currency}): `), currency);
  const session = ctx.requireSession();
  const idempotencyKey = randomUUID();
  say(`key: ${idempotencyKey}`);
  const request = { idempotencyKey, owner: { bank: session.account.bank, username: session.account.username },
    to: { bank: toBank, username: toUsername }, amountMinor, currency };
  try {
    // Written to the outbox before it is sent; if it stays queued, the background sender finishes it.
    const outcome = await sendThroughOutbox(ctx, background.worker, request, (entry) => {
      background.foreground = entry.id;
    });
    reportOutcome(ctx, outcome);
  } finally {
    background.foreground = undefined;
  }
}

function queueMenuText(ctx: CliContext): string {
  const entries = ctx.outbox().list();
  const waiting = entries.filter((e) => !isFinalState(e.state));
  const finished = entries.filter((e) => isFinalState(e.state)).slice(-MENU_QUEUE_FINISHED_SHOWN);
  return [
    `waiting (${waiting.length}):`,
    waiting.length === 0 ? '  none' : outboxListText(waiting).replace(/^/gm, '  '),
    `recently finished (bin/client queue list shows all ${entries.length - waiting.length}):`,
    finished.length === 0 ? '  none' : outboxListText(finished).replace(/^/gm, '  '),
  ].join('\n');
}

async function historyMenu(ctx: CliContext, lines: LineReader, say: (t: string) => void): Promise<void> {
  let pageToken = '';
  // Bounded by the reader: each further page needs a "y".
  for (;;) {
    const page = await ctx.authed((gateway) => gateway.history({ pageSize: MENU_HISTORY_PAGE_SIZE, pageToken }));
    say(historyText(page.entries));
    pageToken = page.nextPageToken;
    if (!pageToken) return;
    const more = await lines.question('more? (y/n): ');
    if (more?.trim().toLowerCase() !== 'y') return;
  }
}

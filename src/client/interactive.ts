import { randomUUID } from 'node:crypto';
import { isName } from '../core/ids.js';
import { endSession } from './commands/logout.js';
import { amountOf } from './commands/args.js';
import { loginAndSave, loginText } from './commands/login.js';
import { submitTransfer } from './commands/transfer.js';
import type { CliContext } from './context.js';
import { exitCodeOf, EXIT } from './exit-codes.js';
import { ClientFailure, usageFailure } from './failure.js';
import { balanceText, historyText, transferOutcomeText } from './format.js';
import type { LineReader } from './lines.js';

// The menu-driven client: bin/client [BANK USER PASSWORD]. Logs in (asking for what is missing),
// then loops over a numbered menu. Reads stdin line by line, so piped input drives it as well as a
// person does. Ends on "4", at end of input, or when the session stops being valid.

/** Entries per history page in the menu. */
export const MENU_HISTORY_PAGE_SIZE = 10;

const MENU = '\n1) balance  2) transfer  3) history  4) logout and quit';

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
          await transferMenu(ctx, lines, say, currency);
          break;
        case '3':
          await historyMenu(ctx, lines, say);
          break;
        case '4':
        case 'q':
        case 'quit': {
          const ended = await endSession(ctx);
          say(ended.message);
          return EXIT.OK;
        }
        default:
          say('choose 1, 2, 3 or 4');
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

async function transferMenu(ctx: CliContext, lines: LineReader, say: (t: string) => void, currency: string): Promise<void> {
  const toBank = await ask(lines, 'to bank: ');
  if (!isName(toBank)) throw usageFailure(`"${toBank}" is not a valid bank name`);
  const toUsername = await ask(lines, 'to username: ');
  if (!isName(toUsername)) throw usageFailure(`"${toUsername}" is not a valid user name`);
  const amountMinor = amountOf(await ask(lines, `amount (${currency}): `), currency);
  const idempotencyKey = randomUUID();
  say(`key: ${idempotencyKey}`);
  const request = { toBank, toUsername, amountMinor, currency, idempotencyKey };
  // Bounded by the reader: each retry needs a "y". Retries reuse the key, so nothing is applied twice.
  for (;;) {
    try {
      say(transferOutcomeText(await ctx.authed((gateway) => submitTransfer(gateway, request))));
      return;
    } catch (err) {
      if (!(err instanceof ClientFailure) || !err.isTransport) throw err;
      ctx.printError(err);
      const again = await lines.question('retry with the same key? (y/n): ');
      if (again?.trim().toLowerCase() !== 'y') return;
    }
  }
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

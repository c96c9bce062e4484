import { usageFailure } from '../failure.js';
import type { CliContext } from '../context.js';
import { accountJson, accountName, outboxEntryJson, timeText } from '../format.js';
import type { OutboxEntry } from '../outbox.js';
import { eventPrinter } from './queue.js';
import type { LoginResult } from '../types.js';
import { checkName, expectArgs, type CommandFlags } from './args.js';

// bin/client login BANK USER [--password P | --password-stdin]

export async function loginCommand(ctx: CliContext, args: readonly string[], flags: CommandFlags): Promise<number> {
  const [bank, username] = expectArgs(args, 2, 'login BANK USER [--password P | --password-stdin]') as [string, string];
  checkName(bank, 'bank name');
  checkName(username, 'user name');
  const password = await readPassword(ctx, flags);
  const result = await loginAndSave(ctx, bank, username, password);
  ctx.note(loginText(result));
  // Payments kept for this account (e.g. while its session had expired) go out now, same keys.
  const resumed = await resumeOutbox(ctx);
  if (ctx.json || resumed.text) ctx.print(resumed.text, {
    account: accountJson(result.account),
    expireTime: new Date(result.expiresAtMs).toISOString(),
    ...(resumed.json ? { outbox: resumed.json } : {}),
  });
  return 0;
}

/**
 * One pass of the outbox worker (bounded by client.outboxResumeMaxMs) if payments are waiting.
 * Progress lines go out as notes; the summary is returned for the caller to print.
 */
export async function resumeOutbox(ctx: CliContext): Promise<{ text: string; json?: Record<string, unknown> }> {
  const outbox = ctx.existingOutbox();
  if (!outbox || outbox.waitingCount() === 0) return { text: '' };
  const finished: OutboxEntry[] = [];
  const print = eventPrinter((line) => ctx.note(line), ctx.config.client.outboxRetryIntervalMs);
  const worker = ctx.outboxWorker((event) => {
    if (event.type === 'finished') finished.push(event.entry);
    print(event);
  });
  const pass = await worker.pass(Date.now() + ctx.config.client.outboxResumeMaxMs);
  const waiting = outbox.waitingCount();
  const maxAge = ctx.config.client.outboxMaxAgeMs;
  const busy = pass.kind === 'busy' ? `; another client (pid ${pass.pid}) is sending them` : '';
  return {
    text: waiting === 0 ? 'offline queue: every payment was sent' : `offline queue: ${waiting} payments waiting (bin/client queue list)${busy}`,
    json: { finished: finished.map((e) => outboxEntryJson(e, maxAge)), waiting },
  };
}

export function loginText(result: LoginResult): string {
  return `logged in as ${accountName(result.account)} (${result.account.currency}); session valid until ${timeText(new Date(result.expiresAtMs))}`;
}

/** Logs in and stores the session (token encrypted) for later runs. */
export async function loginAndSave(ctx: CliContext, bank: string, username: string, password: string): Promise<LoginResult> {
  const result = await ctx.gateway().login(bank, username, password);
  ctx.sessions.save({ token: result.token, account: result.account, expiresAtMs: result.expiresAtMs });
  return result;
}

async function readPassword(ctx: CliContext, flags: CommandFlags): Promise<string> {
  if (flags.password !== undefined && flags['password-stdin']) throw usageFailure('use either --password or --password-stdin, not both');
  let password: string | undefined;
  if (flags.password !== undefined) {
    password = flags.password;
  } else if (flags['password-stdin']) {
    password = await ctx.lines(ctx.io.stderr).read();
  } else if (ctx.stdinIsTerminal) {
    password = await ctx.lines(ctx.io.stderr).secret('password: ');
  } else {
    throw usageFailure('no password: stdin is not a terminal, so pass --password-stdin (or --password P)');
  }
  if (!password) throw usageFailure('the password is empty');
  return password;
}

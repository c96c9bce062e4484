import { usageFailure } from '../failure.js';
import type { CliContext } from '../context.js';
import { accountJson, accountName, timeText } from '../format.js';
import type { LoginResult } from '../types.js';
import { checkName, expectArgs, type CommandFlags } from './args.js';

// bin/client login BANK USER [--password P | --password-stdin]

export async function loginCommand(ctx: CliContext, args: readonly string[], flags: CommandFlags): Promise<number> {
  const [bank, username] = expectArgs(args, 2, 'login BANK USER [--password P | --password-stdin]') as [string, string];
  checkName(bank, 'bank name');
  checkName(username, 'user name');
  const password = await readPassword(ctx, flags);
  const result = await loginAndSave(ctx, bank, username, password);
  ctx.print(loginText(result), { account: accountJson(result.account), expireTime: new Date(result.expiresAtMs).toISOString() });
  return 0;
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

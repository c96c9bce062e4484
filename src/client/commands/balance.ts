import type { CliContext } from '../context.js';
import { balanceJson, balanceText } from '../format.js';
import { expectArgs } from './args.js';

// bin/client balance

export async function balanceCommand(ctx: CliContext, args: readonly string[]): Promise<number> {
  expectArgs(args, 0, 'balance');
  const account = await ctx.authed((gateway) => gateway.balance());
  ctx.print(balanceText(account), { account: balanceJson(account) });
  return 0;
}

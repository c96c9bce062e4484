import type { CliContext } from '../context.js';
import { transferDetailText, transferJson } from '../format.js';
import { checkKey, expectArgs } from './args.js';

// bin/client status KEY

export async function statusCommand(ctx: CliContext, args: readonly string[]): Promise<number> {
  const [key] = expectArgs(args, 1, 'status KEY') as [string];
  checkKey(key);
  const transfer = await ctx.authed((gateway) => gateway.getTransfer(key));
  ctx.print(transferDetailText(transfer), { transfer: transferJson(transfer) });
  return 0;
}

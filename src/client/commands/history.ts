import type { CliContext } from '../context.js';
import { historyJson, historyText } from '../format.js';
import type { HistoryEntryInfo } from '../types.js';
import { expectArgs, pageSizeOf, type CommandFlags } from './args.js';

// bin/client history [--page-size N] [--page-token T] [--all]

/** Bound on pages fetched by --all; past it the output ends with the token to continue from. */
export const HISTORY_ALL_PAGES_MAX = 1000;

export async function historyCommand(ctx: CliContext, args: readonly string[], flags: CommandFlags): Promise<number> {
  expectArgs(args, 0, 'history [--page-size N] [--page-token T] [--all]');
  const pageSize = pageSizeOf(flags['page-size']);
  const pagesMax = flags.all ? HISTORY_ALL_PAGES_MAX : 1;
  const entries: HistoryEntryInfo[] = [];
  let pageToken = flags['page-token'] ?? '';
  await ctx.authed(async (gateway) => {
    for (let page = 0; page < pagesMax; page++) {
      const res = await gateway.history({ pageSize, pageToken });
      entries.push(...res.entries);
      pageToken = res.nextPageToken;
      if (!pageToken) break;
    }
  });
  const more = pageToken ? `\nmore: bin/client history --page-token ${pageToken}` : '';
  ctx.print(`${historyText(entries)}${more}`, historyJson({ entries, nextPageToken: pageToken }));
  return 0;
}

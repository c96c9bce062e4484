import type { CliContext } from '../context.js';
import { ClientFailure } from '../failure.js';
import { accountJson, accountName } from '../format.js';
import type { AccountInfo } from '../types.js';
import { expectArgs } from './args.js';

// bin/client logout

export async function logoutCommand(ctx: CliContext, args: readonly string[]): Promise<number> {
  expectArgs(args, 0, 'logout');
  const ended = await endSession(ctx);
  ctx.print(ended.message, { loggedOut: true, account: ended.account ? accountJson(ended.account) : null });
  return 0;
}

/**
 * Revokes the stored session at the gateway, then deletes it. If the gateway cannot be reached the
 * session is kept (the token would stay valid until it expires), so logout can be run again.
 */
export async function endSession(ctx: CliContext): Promise<{ message: string; account?: AccountInfo }> {
  const loaded = ctx.sessions.load();
  if (loaded.kind !== 'ok') {
    ctx.sessions.clear();
    return { message: 'not logged in' };
  }
  const { session } = loaded;
  const gateway = ctx.gateway();
  gateway.setToken(session.token);
  try {
    await gateway.logout();
  } catch (err) {
    if (!(err instanceof ClientFailure)) throw err;
    if (err.isTransport) {
      throw err.withMessage(`${err.message}; the session is kept: run \`bin/client logout\` again to revoke it`);
    }
    // UNAUTHENTICATED (TOKEN_REVOKED, TOKEN_EXPIRED ...): the token had already ended at the gateway;
    // deleting it locally completes logout.
    if (err.code !== 'UNAUTHENTICATED') throw err;
  }
  ctx.sessions.clear();
  return { message: `logged out ${accountName(session.account)}`, account: session.account };
}

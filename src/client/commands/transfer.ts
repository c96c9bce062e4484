import { randomUUID } from 'node:crypto';
import type { CliContext } from '../context.js';
import { ClientFailure } from '../failure.js';
import { transferJson, transferOutcomeText } from '../format.js';
import type { GatewayClient } from '../gateway-client.js';
import type { TransferInfo, TransferRequest } from '../types.js';
import { amountOf, checkCurrency, checkKey, checkName, expectArgs, type CommandFlags } from './args.js';

// bin/client transfer TO_BANK TO_USER AMOUNT [--key UUID] [--currency CUR]

export async function transferCommand(ctx: CliContext, args: readonly string[], flags: CommandFlags): Promise<number> {
  const [toBank, toUsername, amountText] = expectArgs(args, 3, 'transfer TO_BANK TO_USER AMOUNT [--key UUID] [--currency CUR]') as [string, string, string];
  checkName(toBank, 'bank name');
  checkName(toUsername, 'user name');
  const idempotencyKey = flags.key === undefined ? randomUUID() : checkKey(flags.key);
  if (flags.currency !== undefined) checkCurrency(flags.currency);
  return ctx.authed(async (gateway, session) => {
    const currency = flags.currency ?? session.account.currency;
    const amountMinor = amountOf(amountText, currency);
    // Shown before sending, so the user can look the transfer up even if this run is cut short.
    ctx.note(`key: ${idempotencyKey}`);
    const transfer = await submitTransfer(gateway, { toBank, toUsername, amountMinor, currency, idempotencyKey });
    ctx.print(transferOutcomeText(transfer), { transfer: transferJson(transfer) });
    return 0;
  });
}

/**
 * Sends a transfer; every failure names the key. When the outcome is unknown (no answer), the message
 * says how to find out. An aborted transfer returned as a value is turned into a failure.
 */
export async function submitTransfer(gateway: GatewayClient, request: TransferRequest): Promise<TransferInfo> {
  const key = request.idempotencyKey;
  let transfer: TransferInfo;
  try {
    transfer = await gateway.transfer(request);
  } catch (err) {
    if (!(err instanceof ClientFailure)) throw err;
    if (err.isTransport || err.reason === 'TRANSFER_IN_PROGRESS') {
      throw err.withMessage(
        `${err.message}; transfer ${key} may or may not have happened: check with \`bin/client status ${key}\`` +
          ` or send it again with --key ${key} (it will not be applied twice)`,
        { idempotencyKey: key },
      );
    }
    throw err.withMessage(`transfer ${key} refused: ${err.message}`, { idempotencyKey: key });
  }
  if (transfer.status === 'aborted') {
    throw new ClientFailure('FAILED_PRECONDITION', transfer.failure?.reason || 'TRANSACTION_ABORTED',
      `transfer ${key} aborted: ${transfer.failure?.message || 'no reason given'}`, { idempotencyKey: key });
  }
  return transfer;
}

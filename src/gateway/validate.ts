import { clip } from '../core/clip.js';
import { fail, ok, type Result } from '../core/errors.js';
import { isName, isUuid } from '../core/ids.js';
import { isCurrency } from '../core/money.js';
import type { AccountRef } from '../core/transfer.js';
import type { CreateTransferInput } from './transfers.js';

// Checks of client input, before anything is asked of a bank or the transfer engine. Pure: the
// one outside fact it needs (which banks exist) comes in as a function.

/** Longest password forwarded to a bank; anything longer is refused before it costs a hash. */
export const PASSWORD_MAX_CHARS = 1024;

export interface LoginInput {
  readonly bank: string;
  readonly username: string;
  readonly password: string;
}

export function validateLogin(req: LoginInput): Result<LoginInput> {
  if (!isName(req.bank)) return fail('INVALID_ARGUMENT', 'bank must be a name like "BankA"');
  if (!isName(req.username)) return fail('INVALID_ARGUMENT', 'username must be 1-64 letters, digits, "_", "." or "-"');
  if (!req.password) return fail('INVALID_ARGUMENT', 'password is required');
  if (req.password.length > PASSWORD_MAX_CHARS) {
    return fail('INVALID_ARGUMENT', `password is longer than ${PASSWORD_MAX_CHARS} characters`);
  }
  return ok(req);
}

export function validateIdempotencyKey(key: string): Result<string> {
  if (!isUuid(key)) return fail('INVALID_IDEMPOTENCY_KEY', 'idempotency_key must be a UUID, e.g. from `uuidgen`');
  return ok(key.toLowerCase());
}

/** The fields of a CreateTransferRequest (structurally the generated message). */
export interface TransferRequestFields {
  readonly idempotencyKey: string;
  readonly toBank: string;
  readonly toUsername: string;
  readonly amountMinor: bigint;
  readonly currency: string;
}

export interface TransferRules {
  /** Largest amount one transfer may move, in minor units (config gateway.maxTransferAmountMinor). */
  readonly maxTransferAmountMinor: bigint;
  /** Whether discovery knows the bank. */
  readonly isKnownBank: (bank: string) => boolean;
}

/** Validates a transfer request from `payer` (always the authenticated caller). */
export function validateCreateTransfer(
  req: TransferRequestFields,
  payer: AccountRef,
  rules: TransferRules,
): Result<CreateTransferInput> {
  const key = validateIdempotencyKey(req.idempotencyKey);
  if (!key.ok) return key;
  if (!isName(req.toBank)) return fail('INVALID_ARGUMENT', 'to_bank must be a bank name like "BankB"');
  if (!isName(req.toUsername)) return fail('INVALID_ARGUMENT', 'to_username must be 1-64 letters, digits, "_", "." or "-"');
  if (req.amountMinor <= 0n) return fail('INVALID_AMOUNT', 'amount must be greater than zero');
  if (req.amountMinor > rules.maxTransferAmountMinor) {
    return fail('AMOUNT_TOO_LARGE', `amount exceeds the per-transfer maximum of ${rules.maxTransferAmountMinor} minor units`);
  }
  if (!isCurrency(req.currency)) return fail('INVALID_CURRENCY', `unknown currency "${clip(req.currency)}"`);
  if (req.toBank === payer.bank && req.toUsername === payer.username) {
    return fail('SAME_ACCOUNT', 'cannot transfer to the paying account itself');
  }
  if (!rules.isKnownBank(req.toBank)) return fail('BANK_NOT_FOUND', `no bank named "${req.toBank}"`);
  return ok({
    idempotencyKey: key.value,
    to: { bank: req.toBank, username: req.toUsername },
    amountMinor: req.amountMinor,
    currency: req.currency,
  });
}

export interface PageSizeLimits {
  readonly historyPageSizeDefault: number;
  readonly historyPageSizeMax: number;
}

/** 0 means the default; larger than the cap is capped; negative is an error. */
export function pageSizeOf(requested: number, limits: PageSizeLimits): Result<number> {
  if (!Number.isInteger(requested) || requested < 0) return fail('INVALID_ARGUMENT', 'page_size must be >= 0');
  if (requested === 0) return ok(limits.historyPageSizeDefault);
  return ok(Math.min(requested, limits.historyPageSizeMax));
}

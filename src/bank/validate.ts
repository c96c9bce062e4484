import { clip } from '../core/clip.js';
import { AppError } from '../core/errors.js';
import { isName, isUuid } from '../core/ids.js';
import { isCurrency } from '../core/money.js';
import type { Leg, LegKind } from './participant.js';

// Input checks at the bank's RPC boundary. A bad request throws INVALID_ARGUMENT before the
// ledger is touched, so nothing changes.

export function requireName(field: string, value: string): string {
  if (!isName(value)) throw new AppError('INVALID_ARGUMENT', `${field} "${clip(value)}" is not a valid name`);
  return value;
}

export function requireTxId(value: string): string {
  if (!isUuid(value)) throw new AppError('INVALID_ARGUMENT', `transaction_id "${clip(value)}" is not a UUID`);
  return value;
}

export function requireAmount(value: bigint): bigint {
  if (value <= 0n) throw new AppError('INVALID_AMOUNT', `amount_minor must be > 0, got ${value}`);
  return value;
}

export function requireCurrency(value: string): string {
  if (!isCurrency(value)) throw new AppError('INVALID_CURRENCY', `unknown currency "${clip(value)}"`);
  return value;
}

/** The fields PrepareDebitRequest and PrepareCreditRequest share. */
export interface PrepareRequestFields {
  readonly transactionId: string;
  readonly username: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly counterpartyBank: string;
  readonly counterpartyUsername: string;
}

export function legFromRequest(kind: LegKind, r: PrepareRequestFields): Leg {
  return {
    txId: requireTxId(r.transactionId),
    kind,
    username: requireName('username', r.username),
    amountMinor: requireAmount(r.amountMinor),
    currency: requireCurrency(r.currency),
    counterpartyBank: requireName('counterparty_bank', r.counterpartyBank),
    counterpartyUsername: requireName('counterparty_username', r.counterpartyUsername),
  };
}

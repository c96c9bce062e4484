import type { Failure } from './errors.js';

// The domain view of a transfer, shared by the gateway service, the store and the client.

export interface AccountRef {
  readonly bank: string;
  readonly username: string;
}

export type TransferStatus = 'pending' | 'committed' | 'aborted';

/** A transfer has two legs: the debit at the payer's bank and the credit at the payee's bank. */
export type LegKind = 'debit' | 'credit';

/** What one idempotency key stands for, besides its owner: who is paid, how much, in what. */
export interface TransferTerms {
  readonly to: AccountRef;
  readonly amountMinor: bigint;
  readonly currency: string;
}

export function sameAccount(a: AccountRef, b: AccountRef): boolean {
  return a.bank === b.bank && a.username === b.username;
}

/** The one test of "same transfer parameters": a replay with other terms is a reused key. */
export function sameTerms(a: TransferTerms, b: TransferTerms): boolean {
  return sameAccount(a.to, b.to) && a.amountMinor === b.amountMinor && a.currency === b.currency;
}

export interface TransferParams extends TransferTerms {
  readonly idempotencyKey: string;
  readonly from: AccountRef;
}

export interface TransferView extends TransferParams {
  readonly transactionId: string;
  readonly status: TransferStatus;
  /** Set when status is 'aborted'. */
  readonly failure?: Failure;
  readonly createdAtMs: number;
}

/** Who is calling: set by the auth middleware from a verified token. */
export interface Identity extends AccountRef {
  /** The token's jti, for logout. */
  readonly tokenId: string;
  /** Token expiry, ms since epoch. */
  readonly expiresAtMs: number;
}

import type { Failure } from './errors.js';

// The domain view of a transfer, shared by the gateway service, the store and the client.

export interface AccountRef {
  readonly bank: string;
  readonly username: string;
}

export type TransferStatus = 'pending' | 'committed' | 'aborted';

export interface TransferParams {
  readonly idempotencyKey: string;
  readonly from: AccountRef;
  readonly to: AccountRef;
  readonly amountMinor: bigint;
  readonly currency: string;
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

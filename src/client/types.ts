import type { AccountRef, LegKind, TransferStatus } from '../core/transfer.js';

// What the SDK returns: plain values with bigint minor units, free of generated protobuf types.

export interface AccountInfo extends AccountRef {
  /** ISO 4217 code of the account. */
  readonly currency: string;
}

export interface AccountBalance extends AccountInfo {
  readonly balanceMinor: bigint;
  /** Balance minus funds held by transfers in flight. */
  readonly availableMinor: bigint;
}

export interface LoginResult {
  readonly token: string;
  readonly account: AccountInfo;
  readonly expiresAtMs: number;
}

export interface TransferRequest {
  readonly toBank: string;
  readonly toUsername: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  /** UUID naming this transfer; reuse it on every retry. */
  readonly idempotencyKey: string;
}

export interface TransferInfo {
  readonly transactionId: string;
  readonly idempotencyKey: string;
  readonly from: AccountRef;
  readonly to: AccountRef;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly status: TransferStatus;
  /** Set when status is 'aborted'. */
  readonly failure?: { readonly reason: string; readonly message: string };
  readonly createdAt?: Date;
}

/** Which leg of its transfer a history entry is. */
export type EntryDirection = LegKind;

export interface HistoryEntryInfo {
  readonly transactionId: string;
  readonly direction: EntryDirection;
  /** Always positive. */
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly counterparty: AccountRef;
  readonly balanceAfterMinor: bigint;
  readonly createdAt?: Date;
}

export interface HistoryPage {
  readonly entries: readonly HistoryEntryInfo[];
  /** Empty when there are no more entries. */
  readonly nextPageToken: string;
}

export interface HistoryRequest {
  /** 0 or absent: the gateway's default. */
  readonly pageSize?: number;
  readonly pageToken?: string;
}

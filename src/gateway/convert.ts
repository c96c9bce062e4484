import { unreachable } from '../core/assert.js';
import type { AccountRef, TransferStatus as DomainStatus, TransferView } from '../core/transfer.js';
import * as bank from '../gen/bank/v1/bank.js';
import {
  EntryDirection,
  TransferStatus,
  type Account,
  type HistoryEntry,
  type Transfer,
} from '../gen/payments/v1/gateway.js';

// Domain and bank.v1 values -> payments.v1 messages. Enums are mapped by name, not by number:
// the two protos' enums are independent types.

export function toAccount(owner: AccountRef, balance: bank.GetBalanceResponse): Account {
  return {
    bank: owner.bank,
    username: owner.username,
    currency: balance.currency,
    balanceMinor: balance.balanceMinor,
    availableMinor: balance.availableMinor,
  };
}

export function toTransfer(v: TransferView): Transfer {
  return {
    transactionId: v.transactionId,
    idempotencyKey: v.idempotencyKey,
    fromBank: v.from.bank,
    fromUsername: v.from.username,
    toBank: v.to.bank,
    toUsername: v.to.username,
    amountMinor: v.amountMinor,
    currency: v.currency,
    status: toTransferStatus(v.status),
    failureReason: v.failure?.reason ?? '',
    failureMessage: v.failure?.message ?? '',
    createTime: new Date(v.createdAtMs),
  };
}

export function toTransferStatus(status: DomainStatus): TransferStatus {
  switch (status) {
    case 'pending':
      return TransferStatus.TRANSFER_STATUS_PENDING;
    case 'committed':
      return TransferStatus.TRANSFER_STATUS_COMMITTED;
    case 'aborted':
      return TransferStatus.TRANSFER_STATUS_ABORTED;
    default:
      return unreachable(status, 'transfer status');
  }
}

export function toHistoryEntry(e: bank.HistoryEntry): HistoryEntry {
  return {
    transactionId: e.transactionId,
    direction: toDirection(e.direction),
    amountMinor: e.amountMinor,
    currency: e.currency,
    counterpartyBank: e.counterpartyBank,
    counterpartyUsername: e.counterpartyUsername,
    balanceAfterMinor: e.balanceAfterMinor,
    createTime: e.createTime,
  };
}

function toDirection(d: bank.EntryDirection): EntryDirection {
  switch (d) {
    case bank.EntryDirection.ENTRY_DIRECTION_DEBIT:
      return EntryDirection.ENTRY_DIRECTION_DEBIT;
    case bank.EntryDirection.ENTRY_DIRECTION_CREDIT:
      return EntryDirection.ENTRY_DIRECTION_CREDIT;
    default:
      // A value this gateway's bank.v1 does not know (a newer bank): say so rather than guess.
      return EntryDirection.ENTRY_DIRECTION_UNSPECIFIED;
  }
}

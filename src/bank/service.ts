import { assert } from '../core/assert.js';
import { AppError, type Result } from '../core/errors.js';
import { failpoint } from '../failpoints/index.js';
import {
  EntryDirection,
  TransactionState,
  Vote,
  type BankServiceImplementation,
  type HistoryEntry,
} from '../gen/bank/v1/bank.js';
import type { Ledger, HistoryRow } from './ledger.js';
import { decodePageToken, encodePageToken } from './page-token.js';
import type { Leg, TxState } from './participant.js';
import { PASSWORD_LENGTH_MAX_CHARS, primeUnknownUserHash, verifyPassword } from './passwords.js';
import { legFromRequest, requireName, requireTxId } from './validate.js';

// The bank's gRPC service: validates input, calls the ledger, maps results to messages.
// Votes of NO are answers (vote=VOTE_NO + reason), not errors; other failures throw AppError.

export interface BankServiceLimits {
  readonly historyPageSizeDefault: number;
  readonly historyPageSizeMax: number;
}

function voteOf(result: Result<unknown>): { vote: Vote; reason: string; message: string } {
  return result.ok
    ? { vote: Vote.VOTE_YES, reason: '', message: '' }
    : { vote: Vote.VOTE_NO, reason: result.reason, message: result.message };
}

function stateOf(state: TxState): TransactionState {
  switch (state) {
    case 'prepared': return TransactionState.TRANSACTION_STATE_PREPARED;
    case 'committed': return TransactionState.TRANSACTION_STATE_COMMITTED;
    case 'aborted': return TransactionState.TRANSACTION_STATE_ABORTED;
  }
}

function entryOf(row: HistoryRow): HistoryEntry {
  return {
    transactionId: row.txId,
    direction: row.direction === 'debit' ? EntryDirection.ENTRY_DIRECTION_DEBIT : EntryDirection.ENTRY_DIRECTION_CREDIT,
    amountMinor: row.amountMinor,
    currency: row.currency,
    counterpartyBank: row.counterpartyBank,
    counterpartyUsername: row.counterpartyUsername,
    balanceAfterMinor: row.balanceAfterMinor,
    createTime: new Date(row.createdAtMs),
  };
}

/** 0 means the default; larger than the cap is capped; negative is refused. */
export function effectivePageSize(requested: number, limits: BankServiceLimits): number {
  if (!Number.isInteger(requested) || requested < 0) {
    throw new AppError('INVALID_ARGUMENT', `page_size must be >= 0, got ${requested}`);
  }
  return requested === 0 ? limits.historyPageSizeDefault : Math.min(requested, limits.historyPageSizeMax);
}

export function bankService(ledger: Ledger, limits: BankServiceLimits): BankServiceImplementation {
  assert(limits.historyPageSizeDefault <= limits.historyPageSizeMax, 'history page size default exceeds max');
  primeUnknownUserHash();
  const invalidCredentials = () => new AppError('INVALID_CREDENTIALS', 'unknown user or wrong password');
  const prepare = (leg: Leg) => {
    const result = ledger.prepare(leg);
    // The leg (a debit's hold) is durable and the YES vote not yet sent.
    if (result.ok && result.value === 'insert') failpoint('bank.after_prepare_persisted', leg.kind);
    return result;
  };

  return {
    async authenticate(req) {
      const username = requireName('username', req.username);
      if (req.password.length === 0 || req.password.length > PASSWORD_LENGTH_MAX_CHARS) throw invalidCredentials();
      // Read, then verify outside any SQLite transaction (argon2 is async and slow).
      const hash = ledger.passwordHash(username);
      const valid = await verifyPassword(hash, req.password);
      const account = valid ? ledger.account(username) : undefined;
      if (!account) throw invalidCredentials();
      return { username: account.username, currency: account.currency };
    },

    async getBalance(req) {
      const username = requireName('username', req.username);
      const account = ledger.account(username);
      if (!account) throw new AppError('ACCOUNT_NOT_FOUND', `no account "${username}" at this bank`);
      return {
        username,
        currency: account.currency,
        balanceMinor: account.balanceMinor,
        availableMinor: account.balanceMinor - account.heldMinor,
      };
    },

    async listTransactions(req) {
      const username = requireName('username', req.username);
      const pageSize = effectivePageSize(req.pageSize, limits);
      let beforeSeq: bigint | undefined;
      if (req.pageToken !== '') {
        const decoded = decodePageToken(req.pageToken);
        if (!decoded.ok) throw AppError.from(decoded);
        beforeSeq = decoded.value;
      }
      const page = ledger.history(username, pageSize, beforeSeq);
      if (!page.ok) throw AppError.from(page);
      const next = page.value.nextBeforeSeq;
      return {
        entries: page.value.entries.map(entryOf),
        nextPageToken: next === undefined ? '' : encodePageToken(next),
      };
    },

    async prepareDebit(req) {
      return voteOf(prepare(legFromRequest('debit', req)));
    },

    async prepareCredit(req) {
      return voteOf(prepare(legFromRequest('credit', req)));
    },

    async commit(req) {
      const state = ledger.commit(requireTxId(req.transactionId));
      failpoint('bank.after_commit_applied');
      return { state: stateOf(state) };
    },

    async abort(req) {
      const state = ledger.abort(requireTxId(req.transactionId));
      failpoint('bank.after_abort_applied');
      return { state: stateOf(state) };
    },
  };
}

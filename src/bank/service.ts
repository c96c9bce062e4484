import { assert } from '../core/assert.js';
import { ConcurrencyLimit } from '../core/concurrency-limit.js';
import type { Clock } from '../core/clock.js';
import { AppError, type Result } from '../core/errors.js';
import { failpoint } from '../failpoints/index.js';
import {
  EntryDirection,
  LegKind,
  TransactionState,
  Vote,
  type BankServiceImplementation,
  type HistoryEntry,
  type PrepareLeg,
} from '../gen/bank/v1/bank.js';
import { LedgerGroupCommit, type LedgerObserver } from './group-commit.js';
import type { Ledger, HistoryRow, LedgerOpResult } from './ledger.js';
import { decodePageToken, encodePageToken } from './page-token.js';
import { SettledReads, type SettledReadsLimits } from './settled-reads.js';
import type { Leg, PrepareAction, TxState } from './participant.js';
import { PASSWORD_LENGTH_MAX_CHARS, primeUnknownUserHash, verifyPassword } from './passwords.js';
import { legFromRequest, requireName, requireTxId } from './validate.js';

// The bank's gRPC service: validates input, calls the ledger, maps results to messages.
// Votes of NO are answers (vote=VOTE_NO + reason), not errors; other failures throw AppError.

export interface BankServiceLimits extends SettledReadsLimits {
  readonly historyPageSizeDefault: number;
  readonly historyPageSizeMax: number;
  /** Items (legs or transaction ids) one PrepareBatch / CommitBatch / AbortBatch may carry. */
  readonly batchItemsMax: number;
  /** 2PC operations performed in one group-commit transaction at most. */
  readonly groupCommitOpsMax: number;
  readonly groupCommitWindowMs: number;
  /** argon2 password checks running at once, and waiting for a slot; beyond both Authenticate is BANK_BUSY. */
  readonly passwordChecksMax: number;
  readonly passwordCheckQueueMax: number;
}

function voteOf(result: Result<unknown>): { vote: Vote; reason: string; message: string } {
  return result.ok
    ? { vote: Vote.VOTE_YES, reason: '', message: '' }
    : { vote: Vote.VOTE_NO, reason: result.reason, message: result.message };
}

/** One leg of a PrepareBatch, checked like a PrepareDebit / PrepareCredit request. */
function legOfBatch(l: PrepareLeg): Leg {
  const kind = legKindOf(l.kind);
  if (!kind) throw new AppError('INVALID_ARGUMENT', `leg kind ${l.kind} is neither debit nor credit`);
  return legFromRequest(kind, l);
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

/** A prepare's leg kind on the wire, or undefined for a value we do not know. */
function legKindOf(kind: LegKind): Leg['kind'] | undefined {
  if (kind === LegKind.LEG_KIND_DEBIT) return 'debit';
  if (kind === LegKind.LEG_KIND_CREDIT) return 'credit';
  return undefined;
}

/** The bank's calls but BatchStream, which the server adds over these (src/bank/batch-stream.ts). */
export type BankCalls = Omit<BankServiceImplementation, 'batchStream'>;

/** `ledgerObserver`: told of each group commit of the ledger and what it performed (the bank's metrics). */
export function bankService(
  ledger: Ledger,
  limits: BankServiceLimits,
  clock: Clock,
  ledgerObserver?: LedgerObserver,
): BankCalls {
  assert(limits.historyPageSizeDefault <= limits.historyPageSizeMax, 'history page size default exceeds max');
  primeUnknownUserHash();
  const invalidCredentials = () => new AppError('INVALID_CREDENTIALS', 'unknown user or wrong password');
  // Each check takes a core for ~100 ms: a flood of logins must not queue without bound.
  const passwordChecks = new ConcurrencyLimit(limits.passwordChecksMax, limits.passwordCheckQueueMax);
  // Every 2PC operation, single or batched, goes through one group commit (one fsync per turn).
  const group = new LedgerGroupCommit(ledger, limits, clock, ledgerObserver);
  // Balance and history reads wait for the legs prepared before them (src/bank/settled-reads.ts).
  const reads = new SettledReads(ledger, limits, clock);
  group.onFlushed(() => reads.recheck());
  const prepared = (leg: Leg, r: LedgerOpResult): Result<PrepareAction> => {
    assert(typeof r === 'object', `prepare of ${leg.txId} answered ${typeof r === 'string' ? r : 'a result'}`);
    // The leg (a debit's hold) is durable and the YES vote not yet sent.
    if (r.ok && r.value === 'insert') failpoint('bank.after_prepare_persisted', leg.kind);
    return r;
  };
  const prepare = async (leg: Leg) => prepared(leg, await group.submit({ type: 'prepare', leg }));
  const settled = (r: LedgerOpResult, rpc: 'commit' | 'abort'): TxState => {
    assert(typeof r === 'string', `${rpc} answered a vote`);
    // The outcome is applied on disk; the answer has not been sent.
    failpoint(rpc === 'commit' ? 'bank.after_commit_applied' : 'bank.after_abort_applied');
    return r;
  };
  const requireBatch = (what: string, n: number) => {
    if (n === 0) throw new AppError('INVALID_ARGUMENT', `${what} must not be empty`);
    if (n > limits.batchItemsMax) throw new AppError('INVALID_ARGUMENT', `${what} has ${n} items, more than ${limits.batchItemsMax}`);
  };

  return {
    async authenticate(req) {
      const username = requireName('username', req.username);
      if (req.password.length === 0 || req.password.length > PASSWORD_LENGTH_MAX_CHARS) throw invalidCredentials();
      // Read, then verify outside any SQLite transaction (argon2 is async and slow).
      const hash = ledger.passwordHash(username);
      const check = passwordChecks.tryRun(() => verifyPassword(hash, req.password));
      if (!check) throw new AppError('BANK_BUSY', 'the bank is checking too many passwords at once; try again shortly');
      const valid = await check;
      const account = valid ? ledger.account(username) : undefined;
      if (!account) throw invalidCredentials();
      return { username: account.username, currency: account.currency };
    },

    async getBalance(req) {
      const username = requireName('username', req.username);
      await reads.settled(username);
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
      await reads.settled(username);
      const page = ledger.history(username, pageSize, beforeSeq);
      if (!page.ok) throw AppError.from(page);
      const next = page.value.nextBeforeSeq;
      return {
        entries: page.value.entries.map(entryOf),
        nextPageToken: next === undefined ? '' : encodePageToken(next),
      };
    },

    async prepareDebit(req) {
      return voteOf(await prepare(legFromRequest('debit', req)));
    },

    async prepareCredit(req) {
      return voteOf(await prepare(legFromRequest('credit', req)));
    },

    async commit(req) {
      const txId = requireTxId(req.transactionId);
      return { state: stateOf(settled(await group.submit({ type: 'commit', txId }), 'commit')) };
    },

    async abort(req) {
      const txId = requireTxId(req.transactionId);
      return { state: stateOf(settled(await group.submit({ type: 'abort', txId }), 'abort')) };
    },

    async prepareBatch(req) {
      requireBatch('legs', req.legs.length);
      // A malformed leg is refused alone (a NO vote, nothing held); the others go ahead.
      const legs = req.legs.map((l): Leg | AppError => {
        try {
          return legOfBatch(l);
        } catch (err) {
          if (err instanceof AppError) return err;
          throw err;
        }
      });
      const valid = legs.filter((l): l is Leg => !(l instanceof AppError));
      const results = await group.submitAll(valid.map((leg) => ({ type: 'prepare', leg })));
      let next = 0;
      return {
        votes: legs.map((l) => {
          if (l instanceof AppError) return { vote: Vote.VOTE_NO, reason: l.reason, message: l.message };
          return voteOf(prepared(l, results[next++] as LedgerOpResult));
        }),
      };
    },

    async commitBatch(req) {
      requireBatch('transaction_ids', req.transactionIds.length);
      const ids = req.transactionIds.map(requireTxId);
      const results = await group.submitAll(ids.map((txId) => ({ type: 'commit', txId })));
      return { states: results.map((r) => stateOf(settled(r, 'commit'))) };
    },

    async abortBatch(req) {
      requireBatch('transaction_ids', req.transactionIds.length);
      const ids = req.transactionIds.map(requireTxId);
      const results = await group.submitAll(ids.map((txId) => ({ type: 'abort', txId })));
      return { states: results.map((r) => stateOf(settled(r, 'abort'))) };
    },
  };
}

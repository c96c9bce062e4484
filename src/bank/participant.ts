import { assert } from '../core/assert.js';
import { fail, ok, type Result } from '../core/errors.js';
import { sameTerms, type LegKind, type TransferTerms } from '../core/transfer.js';

// The 2PC participant's decisions, free of SQLite: the ledger reads the current rows, asks these
// functions what to do, and performs the answer inside one SQLite transaction.
// Idempotency follows DTM's sub-transaction barrier: the transaction row is the barrier, an abort
// of an unknown transaction leaves a tombstone (empty rollback) that refuses a late prepare (hanging).

export type { LegKind };
export type TxState = 'prepared' | 'committed' | 'aborted';

/** One side of a transfer at this bank. */
export interface Leg {
  readonly txId: string;
  readonly kind: LegKind;
  readonly username: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly counterpartyBank: string;
  readonly counterpartyUsername: string;
}

export interface AccountState {
  readonly username: string;
  readonly currency: string;
  readonly balanceMinor: bigint;
  /** Sum of the active debit holds. */
  readonly heldMinor: bigint;
}

export interface PrepareInput {
  /** The transaction's state here, or undefined when this bank never saw it. */
  readonly txState: TxState | undefined;
  /** The stored leg of the same kind, if any. */
  readonly existing: Leg | undefined;
  readonly account: AccountState | undefined;
  readonly leg: Leg;
}

/** 'insert': record the leg (and its hold); 'repeat': already prepared with these parameters. */
export type PrepareAction = 'insert' | 'repeat';

export function sameLeg(a: Leg, b: Leg): boolean {
  return a.txId === b.txId && a.kind === b.kind && a.username === b.username && sameTerms(termsOf(a), termsOf(b));
}

/** A leg's terms as seen from this bank: the other party stands where the payee stands. */
function termsOf(leg: Leg): TransferTerms {
  return { to: { bank: leg.counterpartyBank, username: leg.counterpartyUsername }, amountMinor: leg.amountMinor, currency: leg.currency };
}

/** Decides a PrepareDebit or PrepareCredit. A NO vote is a failed Result, never a throw. */
export function decidePrepare(input: PrepareInput): Result<PrepareAction> {
  const { txState, existing, account, leg } = input;
  if (txState === 'aborted') {
    return fail('TRANSACTION_ABORTED', `transaction ${leg.txId} was already aborted at this bank`);
  }
  if (existing) {
    assert(txState !== undefined, `leg ${leg.txId}/${leg.kind} stored without its transaction row`);
    if (sameLeg(existing, leg)) return ok('repeat');
    return fail('TRANSACTION_CONFLICT', `transaction ${leg.txId} already has a ${leg.kind} leg with other parameters`);
  }
  if (txState === 'committed') {
    return fail('TRANSACTION_CONFLICT', `transaction ${leg.txId} is already committed without a ${leg.kind} leg`);
  }
  if (!account) return fail('ACCOUNT_NOT_FOUND', `no account "${leg.username}" at this bank`);
  if (account.currency !== leg.currency) {
    return fail('CURRENCY_MISMATCH', `account "${leg.username}" holds ${account.currency}, not ${leg.currency}`);
  }
  if (leg.kind === 'debit' && account.balanceMinor - account.heldMinor < leg.amountMinor) {
    return fail('INSUFFICIENT_FUNDS', `account "${leg.username}" has insufficient available funds`);
  }
  return ok('insert');
}

/** 'apply': apply every prepared leg; 'none': already committed, answer again. */
export type CommitAction = 'apply' | 'none';

/** A commit for a transaction never prepared, or aborted, means the coordinator broke the protocol. */
export function decideCommit(txId: string, txState: TxState | undefined, legCount: number): CommitAction {
  assert(txState !== undefined, `commit of transaction ${txId} that was never prepared at this bank`);
  assert(txState !== 'aborted', `commit of transaction ${txId} that was aborted at this bank`);
  assert(legCount > 0, `transaction ${txId} is ${txState} but has no legs`);
  return txState === 'committed' ? 'none' : 'apply';
}

/** 'tombstone': unknown transaction, remember the abort; 'release': free the holds; 'none': repeat. */
export type AbortAction = 'tombstone' | 'release' | 'none';

export function decideAbort(txId: string, txState: TxState | undefined): AbortAction {
  assert(txState !== 'committed', `abort of transaction ${txId} that was committed at this bank`);
  if (txState === undefined) return 'tombstone';
  return txState === 'prepared' ? 'release' : 'none';
}

import type { AccountRef, TransferView } from '../core/transfer.js';

// What the gateway service needs from the transfer engine (coordinator driver + store).
// The service validates input first (src/gateway/validate.ts); the engine asserts it is valid.

export interface CreateTransferInput {
  readonly idempotencyKey: string;
  readonly to: AccountRef;
  readonly amountMinor: bigint;
  readonly currency: string;
}

/** A coordinator's answer to a bank asking about a transaction. */
export type Decided = 'commit' | 'abort' | 'pending';

export interface Transfers {
  /**
   * Runs (or replays) the caller's transfer. Resolves with the COMMITTED view. Throws AppError for
   * an aborted outcome (the original reason, e.g. INSUFFICIENT_FUNDS, also on replay),
   * IDEMPOTENCY_KEY_REUSED for the same key with other parameters, TRANSFER_IN_PROGRESS when the
   * first attempt is still running past the wait bound, RESOURCE_EXHAUSTED-type reasons on overload.
   */
  create(owner: AccountRef, input: CreateTransferInput): Promise<TransferView>;
  /** The caller's transfer by idempotency key, or undefined. */
  get(owner: AccountRef, idempotencyKey: string): Promise<TransferView | undefined>;
  /**
   * The coordinator's decision for a 2PC transaction id, for a bank that prepared it and asks
   * (termination protocol): 'pending' while undecided; 'abort' also when there is no record of it
   * (presumed abort: the record is written before any prepare leaves, and only final transfers,
   * which no bank holds anything for, are ever pruned).
   */
  decisionOf(txId: string): Promise<Decided>;
  /** Recovery: presumed abort for undecided transfers, drive decided ones to completion. */
  start(): Promise<void>;
  /** Stop starting transfers; wait up to graceMs for in-flight ones; close the store. */
  stop(graceMs: number): Promise<void>;
}

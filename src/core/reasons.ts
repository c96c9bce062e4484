// Machine-readable error reasons (AIP-193: exactly one per error), with the gRPC status each maps to.
// Core names codes as strings so it does not depend on gRPC; middleware turns them into statuses.

export type Code =
  | 'INVALID_ARGUMENT'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'ABORTED'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'RESOURCE_EXHAUSTED'
  | 'INTERNAL';

export const REASON_CODES = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  INVALID_AMOUNT: 'INVALID_ARGUMENT',
  AMOUNT_TOO_LARGE: 'INVALID_ARGUMENT',
  INVALID_CURRENCY: 'INVALID_ARGUMENT',
  INVALID_IDEMPOTENCY_KEY: 'INVALID_ARGUMENT',
  INVALID_PAGE_TOKEN: 'INVALID_ARGUMENT',
  /** The request bytes are not a valid protobuf message of the method's request type. */
  MALFORMED_REQUEST: 'INVALID_ARGUMENT',
  SAME_ACCOUNT: 'INVALID_ARGUMENT',
  INVALID_CREDENTIALS: 'UNAUTHENTICATED',
  TOKEN_MISSING: 'UNAUTHENTICATED',
  TOKEN_INVALID: 'UNAUTHENTICATED',
  TOKEN_EXPIRED: 'UNAUTHENTICATED',
  TOKEN_REVOKED: 'UNAUTHENTICATED',
  PEER_NOT_ALLOWED: 'PERMISSION_DENIED',
  BANK_NOT_FOUND: 'NOT_FOUND',
  ACCOUNT_NOT_FOUND: 'NOT_FOUND',
  TRANSFER_NOT_FOUND: 'NOT_FOUND',
  INSUFFICIENT_FUNDS: 'FAILED_PRECONDITION',
  CURRENCY_MISMATCH: 'FAILED_PRECONDITION',
  TRANSACTION_ABORTED: 'FAILED_PRECONDITION',
  TRANSACTION_CONFLICT: 'FAILED_PRECONDITION',
  IDEMPOTENCY_KEY_REUSED: 'ALREADY_EXISTS',
  TRANSFER_IN_PROGRESS: 'ABORTED',
  BANK_UNAVAILABLE: 'UNAVAILABLE',
  /** A bank did not answer a read or login within gateway.bankCallTimeoutMs. */
  BANK_TIMEOUT: 'DEADLINE_EXCEEDED',
  PREPARE_TIMEOUT: 'DEADLINE_EXCEEDED',
  SHUTTING_DOWN: 'UNAVAILABLE',
  /** The database several gateways share cannot be reached now; another instance (or a retry) may answer. */
  STORE_UNAVAILABLE: 'UNAVAILABLE',
  OVERLOADED: 'RESOURCE_EXHAUSTED',
  /** Too many failed logins for the account or from the caller: wait for the RetryInfo delay. */
  LOGIN_THROTTLED: 'RESOURCE_EXHAUSTED',
  /** A bank's password checks and their queue are full (bank.passwordChecksMax, passwordCheckQueueMax), or its reads waiting for transfers to settle (readSettleWaitersMax). */
  BANK_BUSY: 'RESOURCE_EXHAUSTED',
  INTERNAL: 'INTERNAL',
} as const satisfies Record<string, Code>;

export type Reason = keyof typeof REASON_CODES;

export function isReason(value: string): value is Reason {
  return Object.prototype.hasOwnProperty.call(REASON_CODES, value);
}

export function codeOf(reason: Reason): Code {
  return REASON_CODES[reason];
}

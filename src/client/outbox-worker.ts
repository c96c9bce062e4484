import { sleep, type Clock } from '../core/clock.js';
import { sameTerms, type AccountRef } from '../core/transfer.js';
import { ClientFailure, CLIENT_REASONS } from './failure.js';
import type { GatewayClient } from './gateway-client.js';
import type { Outbox, OutboxEntry, OutboxError } from './outbox.js';
import type { Session } from './session.js';
import type { TransferInfo } from './types.js';

// Sends what the outbox holds, in order per account (FIFO per owner: an entry waits until every
// older entry of its owner has a final outcome), one process at a time (the outbox lease).
//
// One attempt at an entry:
//   1. Wait (bounded) for a connection. None: the gateway is unreachable, nothing is sent.
//   2. If the entry was sent before (answer lost: "in doubt"), ask GetTransfer(key). Found: that is
//      the outcome (or the gateway is still deciding). TRANSFER_NOT_FOUND: it never arrived, so it
//      is safe to send again with the same key.
//   3. Durably mark it sent, then CreateTransfer with the entry's key. Record the answer: committed,
//      or the gateway's refusal (final); token refused -> needs login; no answer -> in doubt.
// An entry never sent that is older than outboxMaxAgeMs expires; a sent one is resolved first.

export type OutboxEvent =
  /** Marked sent; CreateTransfer is about to go out. */
  | { readonly type: 'sending'; readonly entry: OutboxEntry }
  /** In doubt: asking GetTransfer. */
  | { readonly type: 'resolving'; readonly entry: OutboxEntry }
  /** A final outcome was recorded (with the gateway's view of the transfer when it sent one). */
  | { readonly type: 'finished'; readonly entry: OutboxEntry; readonly transfer?: TransferInfo }
  /** The attempt ended without an outcome; the entry stays queued. */
  | { readonly type: 'waiting'; readonly entry: OutboxEntry; readonly error: OutboxError }
  /** The gateway refused the token; the entry waits for its owner's login. */
  | { readonly type: 'needs_login'; readonly entry: OutboxEntry; readonly error: OutboxError };

export interface OutboxWorkerLimits {
  readonly outboxRetryIntervalMs: number;
  readonly outboxConnectTimeoutMs: number;
  readonly outboxMaxAgeMs: number;
}

export interface OutboxWorkerDeps {
  readonly outbox: Outbox;
  /** The gateway client; may throw a ClientFailure when no gateway can be found. */
  readonly gateway: () => GatewayClient;
  /** The stored session if it can be used now. */
  readonly session: () => Session | undefined;
  /** The gateway refused the session's token: forget it. */
  readonly dropSession: () => void;
  readonly limits: OutboxWorkerLimits;
  readonly onEvent?: (event: OutboxEvent) => void;
  /** Time of entries and the pause between passes. */
  readonly clock: Clock;
  /**
   * Test only (PAYMENTS_CLIENT_TEST_OUTBOX_DELAY_MS): pause between a send's answer and recording
   * it, so a test can kill the client while the answer is known only to the gateway.
   */
  readonly testDelayAfterSendMs?: number;
}

export type PassResult =
  /** Another live process holds the outbox lease and is sending. */
  | { readonly kind: 'busy'; readonly pid: number }
  /** No usable session: every waiting entry needs a login. */
  | { readonly kind: 'no_session'; readonly needsLogin: number }
  | {
      readonly kind: 'done';
      readonly owner: AccountRef;
      /** Entries of the session's owner still pending. */
      readonly pending: number;
      /** Entries (of any owner) waiting for a login. */
      readonly needsLogin: number;
    };

export interface RunResult {
  readonly last: PassResult;
  /** The run ended because of its time limit or signal, not because the queue emptied. */
  readonly stopped: boolean;
}

type AttemptResult = 'final' | 'waiting' | 'login';

const NEEDS_LOGIN: OutboxError = {
  code: 'UNAUTHENTICATED',
  reason: CLIENT_REASONS.NOT_LOGGED_IN,
  message: 'waiting for its owner to log in (bin/client login BANK USER)',
};

/** Failures after which the gateway may still have the request, or may act on it later. */
const RETRY_REASONS: ReadonlySet<string> = new Set(['TRANSFER_IN_PROGRESS', 'OVERLOADED', 'INTERNAL', CLIENT_REASONS.INVALID_RESPONSE]);

/** What an attempt's failure means for the entry. */
export function classifyFailure(failure: ClientFailure): AttemptResult {
  if (failure.code === 'UNAUTHENTICATED') return 'login';
  // Transport failures (no ErrorInfo: unreachable, deadline) and the gateway's "try again later".
  if (failure.isTransport || RETRY_REASONS.has(failure.reason)) return 'waiting';
  // No machine-readable reason at all: not our gateway's answer, so it proves nothing.
  if (failure.reason === failure.code) return 'waiting';
  // Every other answer carrying a reason (INSUFFICIENT_FUNDS, ACCOUNT_NOT_FOUND, BANK_UNAVAILABLE,
  // INVALID_ARGUMENT ...) is the gateway's final word on this key.
  return 'final';
}

function errorOf(failure: ClientFailure): OutboxError {
  return { code: failure.code, reason: failure.reason, message: failure.message };
}

export class OutboxWorker {
  private readonly deps: OutboxWorkerDeps;
  private readonly now: () => number;
  /** Passes of this process run one at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<(event: OutboxEvent) => void>();

  constructor(deps: OutboxWorkerDeps) {
    this.deps = deps;
    this.now = () => deps.clock.nowMs();
  }

  /**
   * One pass over the session owner's waiting entries, oldest first, stopping at the first entry
   * that does not reach a final outcome (FIFO) or at `deadlineMs`.
   */
  pass(deadlineMs = Number.POSITIVE_INFINITY): Promise<PassResult> {
    const next = this.chain.then(() => this.passNow(deadlineMs));
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * Passes every outboxRetryIntervalMs until the session owner has nothing pending (if untilEmpty),
   * `deadlineMs`, or `signal`.
   */
  async run(options: { untilEmpty: boolean; deadlineMs?: number; signal?: AbortSignal }): Promise<RunResult> {
    const deadlineMs = options.deadlineMs ?? Number.POSITIVE_INFINITY;
    // Bounded by the deadline or the signal (or, with untilEmpty, by the queue emptying).
    for (;;) {
      const last = await this.pass(deadlineMs);
      const empty = last.kind === 'no_session' || (last.kind === 'done' && last.pending === 0);
      if (options.untilEmpty && empty) return { last, stopped: false };
      if (options.signal?.aborted || this.now() >= deadlineMs) return { last, stopped: true };
      const pause = Math.min(this.deps.limits.outboxRetryIntervalMs, Math.max(0, deadlineMs - this.now()));
      try {
        await sleep(this.deps.clock, pause, options.signal);
      } catch {
        return { last, stopped: true };
      }
    }
  }

  private async passNow(deadlineMs: number): Promise<PassResult> {
    const { outbox } = this.deps;
    // Nothing waiting: no lease, no write (an idle interactive client polls this every interval).
    if (outbox.waitingCount() === 0) {
      const session = this.deps.session();
      return session
        ? { kind: 'done', owner: { bank: session.account.bank, username: session.account.username }, pending: 0, needsLogin: 0 }
        : { kind: 'no_session', needsLogin: 0 };
    }
    const lease = outbox.acquireLease(this.now());
    if (!lease.ok) return { kind: 'busy', pid: lease.pid };
    const session = this.deps.session();
    if (!session) {
      outbox.holdForLogin(undefined, NEEDS_LOGIN);
      return { kind: 'no_session', needsLogin: outbox.waitingCount() };
    }
    const owner = { bank: session.account.bank, username: session.account.username };
    outbox.holdForLogin(owner, NEEDS_LOGIN);
    outbox.resumeAfterLogin(owner);
    for (const entry of outbox.waiting(owner)) {
      if (this.now() >= deadlineMs) break;
      if (!outbox.acquireLease(this.now()).ok) break;
      const result = await this.attempt(entry, session);
      if (result !== 'final') break;
    }
    const waiting = outbox.waiting();
    return {
      kind: 'done',
      owner,
      pending: waiting.filter((e) => e.state === 'pending' && sameOwner(e.owner, owner)).length,
      needsLogin: waiting.filter((e) => e.state === 'needs_login').length,
    };
  }

  private async attempt(entry: OutboxEntry, session: Session): Promise<AttemptResult> {
    const { outbox, limits } = this.deps;
    const expired = this.now() >= entry.createdAtMs + limits.outboxMaxAgeMs;
    if (expired && !entry.sent) {
      return this.finished(outbox.finishExpired(entry.id, this.now(), {
        code: 'DEADLINE_EXCEEDED',
        reason: 'OUTBOX_EXPIRED',
        message: `not sent within client.outboxMaxAgeMs=${limits.outboxMaxAgeMs} ms (the gateway was unreachable); nothing was transferred`,
      }));
    }
    let gateway: GatewayClient;
    try {
      gateway = this.deps.gateway();
    } catch (err) {
      // E.g. no healthy gateway in discovery (a reachability failure): nothing was sent, keep it.
      // Anything else (missing certificates ...) is not the gateway's fault: surface it.
      if (!(err instanceof ClientFailure) || classifyFailure(err) !== 'waiting') throw err;
      return this.waiting(entry, errorOf(err), true);
    }
    gateway.setToken(session.token);
    if (!(await gateway.waitConnected(limits.outboxConnectTimeoutMs))) {
      return this.waiting(entry, {
        code: 'UNAVAILABLE',
        reason: CLIENT_REASONS.GATEWAY_UNREACHABLE,
        message: `cannot reach the gateway at ${gateway.address}`,
      }, true);
    }

    if (entry.sent) {
      this.emit({ type: 'resolving', entry });
      try {
        return this.settle(entry, await gateway.getTransfer(entry.idempotencyKey));
      } catch (err) {
        if (!(err instanceof ClientFailure)) throw err;
        if (err.reason !== 'TRANSFER_NOT_FOUND') {
          if (classifyFailure(err) === 'login') return this.needsLogin(entry, errorOf(err), undefined);
          // Only CreateTransfer's answer can make a refusal final; any other failure here proves nothing.
          return this.waiting(entry, errorOf(err), true);
        }
        // It never arrived: send it again with the same key (or let it expire, nothing was done).
        if (expired) {
          return this.finished(outbox.finishExpired(entry.id, this.now(), {
            code: 'DEADLINE_EXCEEDED',
            reason: 'OUTBOX_EXPIRED',
            message: `the gateway never received it within client.outboxMaxAgeMs=${limits.outboxMaxAgeMs} ms; nothing was transferred`,
          }));
        }
      }
    }

    const sentBefore = entry.sent;
    // Persist, then send: the entry is marked sent before the request can leave.
    if (!outbox.markSending(entry.id, this.now())) return 'final';
    this.emit({ type: 'sending', entry: outbox.get(entry.id)! });
    let answer: TransferInfo | ClientFailure;
    try {
      answer = await gateway.transfer({
        toBank: entry.to.bank,
        toUsername: entry.to.username,
        amountMinor: entry.amountMinor,
        currency: entry.currency,
        idempotencyKey: entry.idempotencyKey,
      });
    } catch (err) {
      if (!(err instanceof ClientFailure)) throw err;
      answer = err;
    }
    if (this.deps.testDelayAfterSendMs) await sleep(this.deps.clock, this.deps.testDelayAfterSendMs);
    if (!(answer instanceof ClientFailure)) return this.settle(entry, answer);
    switch (classifyFailure(answer)) {
      case 'login':
        // The gateway refused the token before looking at the transfer: this attempt created nothing.
        return this.needsLogin(entry, errorOf(answer), sentBefore);
      case 'waiting':
        return this.waiting(entry, errorOf(answer), false);
      case 'final':
        return this.finished(outbox.finishFailed(entry.id, this.now(), errorOf(answer)));
    }
  }

  /** Records what the gateway says about the entry's transfer. */
  private settle(entry: OutboxEntry, transfer: TransferInfo): AttemptResult {
    if (transfer.idempotencyKey !== entry.idempotencyKey || !sameTerms(transfer, entry)) {
      return this.waiting(entry, {
        code: 'INTERNAL',
        reason: CLIENT_REASONS.INVALID_RESPONSE,
        message: `the gateway answered for another transfer than key ${entry.idempotencyKey}`,
      }, true);
    }
    switch (transfer.status) {
      case 'committed':
        return this.finished(this.deps.outbox.finishCommitted(entry.id, this.now(), transfer.transactionId), transfer);
      case 'aborted':
        return this.finished(this.deps.outbox.finishFailed(entry.id, this.now(), {
          code: 'FAILED_PRECONDITION',
          reason: transfer.failure?.reason || 'TRANSACTION_ABORTED',
          message: transfer.failure?.message || 'the transfer was aborted',
        }), transfer);
      case 'pending':
        return this.waiting(entry, { code: 'OK', reason: 'TRANSFER_PENDING', message: 'the gateway is still deciding this transfer' }, true);
    }
  }

  private finished(entry: OutboxEntry, transfer?: TransferInfo): AttemptResult {
    this.emit({ type: 'finished', entry, ...(transfer ? { transfer } : {}) });
    return 'final';
  }

  private waiting(entry: OutboxEntry, error: OutboxError, countAttempt: boolean): AttemptResult {
    this.deps.outbox.recordAttempt(entry.id, this.now(), error, countAttempt);
    this.emit({ type: 'waiting', entry: this.deps.outbox.get(entry.id) ?? entry, error });
    return 'waiting';
  }

  private needsLogin(entry: OutboxEntry, error: OutboxError, sentBefore: boolean | undefined): AttemptResult {
    this.deps.outbox.markNeedsLogin(entry.id, this.now(), error, sentBefore);
    this.deps.dropSession();
    this.emit({ type: 'needs_login', entry: this.deps.outbox.get(entry.id) ?? entry, error });
    return 'login';
  }

  /** Also tells `listener` about every event; returns the function that stops it. */
  subscribe(listener: (event: OutboxEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: OutboxEvent): void {
    this.deps.onEvent?.(event);
    for (const listener of this.listeners) listener(event);
  }
}

function sameOwner(a: AccountRef, b: AccountRef): boolean {
  return a.bank === b.bank && a.username === b.username;
}

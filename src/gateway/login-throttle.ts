import { assert } from '../core/assert.js';

// Login throttling, decided before the bank is asked (each guess costs a bank ~100 ms of argon2).
// Failures are counted per account (bank/username) and per caller (certificate name + IP). Once a
// key has `failuresMax` failures, every further failure doubles its back-off, from loginBackoffBaseMs
// up to loginBackoffMaxMs; while backing off an attempt is refused with the time left. Failures are
// forgotten after loginFailureWindowMs without one (counted from the end of the back-off). A
// successful login clears its account's failures. Memory is bounded: each table keeps at most
// loginThrottleEntriesMax keys, the least recently failed evicted first. Time comes in as `nowMs`.

export interface LoginThrottleLimits {
  readonly loginAccountFailuresMax: number;
  readonly loginPeerFailuresMax: number;
  readonly loginFailureWindowMs: number;
  readonly loginBackoffBaseMs: number;
  readonly loginBackoffMaxMs: number;
  readonly loginThrottleEntriesMax: number;
}

/** Failures recorded for the account and for the caller, this one included. */
export interface FailureCounts {
  readonly accountFailures: number;
  readonly peerFailures: number;
}

/** One started login; exactly one of its methods is called when the bank has answered. */
export interface LoginAttempt {
  /**
   * Wrong username or password. Returns the failure counts now recorded: `recorded` when given
   * (what a store shared by several gateways counted, this failure included: it also knows of
   * successes at other instances), else this table's counts plus one.
   */
  failed(recorded?: FailureCounts): FailureCounts;
  /** Right password: the account's failures are cleared. */
  succeeded(): void;
  /** Neither (the bank was unavailable, the call was cancelled): nothing is counted. */
  ended(): void;
}

/** Refused before the bank is asked: `scope` is the key that is backing off. */
export interface LoginRefusal {
  readonly ok: false;
  readonly scope: 'account' | 'peer';
  readonly retryAfterMs: number;
}

export type LoginAdmission = { readonly ok: true; readonly attempt: LoginAttempt } | LoginRefusal;

/**
 * What the gateway service asks before a login: this process's LoginThrottle, or that plus the
 * failures every gateway instance shares (shared/login-failures.ts), whose answers are awaited.
 */
export interface LoginGate {
  begin(account: string, peer: string): GateAdmission | Promise<GateAdmission>;
}

export type GateAdmission = { readonly ok: true; readonly attempt: GateAttempt } | LoginRefusal;

/** A LoginAttempt whose failure or success may have to be recorded elsewhere first (awaited). */
export interface GateAttempt {
  failed(): FailureCounts | Promise<FailureCounts>;
  succeeded(): void | Promise<void>;
  ended(): void;
}

interface Entry {
  failures: number;
  lastFailureAtMs: number;
  blockedUntilMs: number;
  inFlight: number;
}

/** Exponent cap, so 2 ** n stays a finite number (the back-off is capped far below it anyway); the shared table's SQL uses it too. */
export const MAX_DOUBLINGS = 40;

class FailureTable {
  // Map order is insertion order: re-inserting on each failure keeps the least recently failed first.
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly failuresMax: number,
    private readonly limits: LoginThrottleLimits,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** How long an attempt for `key` must wait; 0 = it may start now. */
  waitMs(key: string, nowMs: number): number {
    const e = this.live(key, nowMs);
    if (!e) return 0;
    if (e.blockedUntilMs > nowMs) return e.blockedUntilMs - nowMs;
    // Below the threshold as many may run at once as failures are left; at or above it one at a
    // time, so parallel guesses cannot slip past the back-off.
    const allowance = Math.max(this.failuresMax - e.failures, 1);
    return e.inFlight >= allowance ? this.limits.loginBackoffBaseMs : 0;
  }

  start(key: string, nowMs: number): Entry {
    const e = this.live(key, nowMs) ?? this.insert(key, { failures: 0, lastFailureAtMs: nowMs, blockedUntilMs: 0, inFlight: 0 });
    e.inFlight++;
    return e;
  }

  fail(key: string, e: Entry, nowMs: number, recorded?: number): number {
    this.finish(e);
    if (this.isExpired(e, nowMs)) e.failures = 0;
    e.failures = recorded ?? e.failures + 1;
    e.lastFailureAtMs = nowMs;
    if (e.failures >= this.failuresMax) {
      const doublings = Math.min(e.failures - this.failuresMax, MAX_DOUBLINGS);
      e.blockedUntilMs = nowMs + Math.min(this.limits.loginBackoffMaxMs, this.limits.loginBackoffBaseMs * 2 ** doublings);
    }
    // Most recently failed goes last (re-added if it was evicted while the bank was asked).
    this.entries.delete(key);
    this.insert(key, e);
    return e.failures;
  }

  clear(key: string, e: Entry): void {
    this.finish(e);
    if (this.entries.get(key) === e) this.entries.delete(key);
  }

  release(key: string, e: Entry): void {
    this.finish(e);
    if (e.failures === 0 && e.inFlight === 0 && this.entries.get(key) === e) this.entries.delete(key);
  }

  private finish(e: Entry): void {
    assert(e.inFlight > 0, 'a login attempt ended that never started');
    e.inFlight--;
  }

  private live(key: string, nowMs: number): Entry | undefined {
    const e = this.entries.get(key);
    if (e && e.inFlight === 0 && this.isExpired(e, nowMs)) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private isExpired(e: Entry, nowMs: number): boolean {
    return nowMs - Math.max(e.lastFailureAtMs, e.blockedUntilMs) > this.limits.loginFailureWindowMs;
  }

  private insert(key: string, e: Entry): Entry {
    while (this.entries.size >= this.limits.loginThrottleEntriesMax) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    this.entries.set(key, e);
    return e;
  }
}

export class LoginThrottle {
  private readonly accounts: FailureTable;
  private readonly peers: FailureTable;

  constructor(
    limits: LoginThrottleLimits,
    private readonly nowMs: () => number,
  ) {
    assert(limits.loginBackoffBaseMs <= limits.loginBackoffMaxMs, 'login back-off base exceeds its max');
    this.accounts = new FailureTable(limits.loginAccountFailuresMax, limits);
    this.peers = new FailureTable(limits.loginPeerFailuresMax, limits);
  }

  /** Keys held (accounts, callers): for tests of the bound. */
  get sizes(): { accounts: number; peers: number } {
    return { accounts: this.accounts.size, peers: this.peers.size };
  }

  /** Admits a login of `account` from `peer`, or says which limit refuses it and for how long. */
  begin(account: string, peer: string): LoginAdmission {
    const now = this.nowMs();
    const accountWait = this.accounts.waitMs(account, now);
    const peerWait = this.peers.waitMs(peer, now);
    if (accountWait > 0 || peerWait > 0) {
      return accountWait >= peerWait
        ? { ok: false, scope: 'account', retryAfterMs: accountWait }
        : { ok: false, scope: 'peer', retryAfterMs: peerWait };
    }
    const a = this.accounts.start(account, now);
    const p = this.peers.start(peer, now);
    let finished = false;
    const finish = () => {
      assert(!finished, `login attempt of ${account} finished twice`);
      finished = true;
    };
    return {
      ok: true,
      attempt: {
        failed: (recorded) => {
          finish();
          const at = this.nowMs();
          return {
            accountFailures: this.accounts.fail(account, a, at, recorded?.accountFailures),
            peerFailures: this.peers.fail(peer, p, at, recorded?.peerFailures),
          };
        },
        succeeded: () => {
          finish();
          this.accounts.clear(account, a);
          this.peers.release(peer, p);
        },
        ended: () => {
          finish();
          this.accounts.release(account, a);
          this.peers.release(peer, p);
        },
      },
    };
  }
}

/** Told of refused and throttled logins (the gateway's metrics). */
export interface LoginObserver {
  /** The bank refused the credentials. */
  failed(): void;
  /** Refused before the bank was asked: `scope` is the key that is backing off. */
  throttled(scope: 'account' | 'peer'): void;
}

/** `gate`, telling `observer` of each failed and each throttled login. */
export function observedLoginThrottle(gate: LoginGate, observer: LoginObserver): LoginGate {
  return {
    async begin(account, peer) {
      const admission = await gate.begin(account, peer);
      if (!admission.ok) {
        observer.throttled(admission.scope);
        return admission;
      }
      const { attempt } = admission;
      return {
        ok: true,
        attempt: {
          failed() {
            observer.failed();
            return attempt.failed();
          },
          succeeded: () => attempt.succeeded(),
          ended: () => attempt.ended(),
        },
      };
    },
  };
}

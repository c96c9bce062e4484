import { expect } from 'chai';
import { ConfigSchema } from '../../src/config/schema.js';
import { systemClock } from '../../src/core/clock.js';
import { LoginThrottle, type LoginThrottleLimits } from '../../src/gateway/login-throttle.js';
import { SharedLoginFailures, sharedLoginGate } from '../../src/gateway/shared/login-failures.js';
import { silentLogger, type Logger } from '../../src/logging/logger.js';

// The login throttle under a hand-driven clock: no sleeps, hours of attack in microseconds.

const DEFAULTS: LoginThrottleLimits = ConfigSchema.parse({}).gateway;
const LIMITS: LoginThrottleLimits = {
  loginAccountFailuresMax: 3,
  loginPeerFailuresMax: 10,
  loginFailureWindowMs: 60_000,
  loginBackoffBaseMs: 1000,
  loginBackoffMaxMs: 8000,
  loginThrottleEntriesMax: 100,
};

function setup(limits: LoginThrottleLimits = LIMITS) {
  const clock = { now: 0 };
  return { clock, throttle: new LoginThrottle(limits, () => clock.now) };
}

/** One wrong guess if admitted; the refusal otherwise. */
function guess(throttle: LoginThrottle, account: string, peer: string) {
  const a = throttle.begin(account, peer);
  if (a.ok) a.attempt.failed();
  return a;
}

describe('login throttle', () => {
  it('backs off exponentially after N failures, up to the max, and answers the time left', () => {
    const { clock, throttle } = setup();
    for (let i = 0; i < 3; i++) expect(guess(throttle, 'BankA/alice', `peer${i}`).ok).to.equal(true);
    const refused = throttle.begin('BankA/alice', 'other-peer');
    expect(refused).to.deep.equal({ ok: false, scope: 'account', retryAfterMs: 1000 });
    clock.now = 400;
    expect(throttle.begin('BankA/alice', 'p')).to.deep.include({ ok: false, retryAfterMs: 600 });
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = throttle.begin('BankA/alice', 'p');
      if (r.ok) throw new Error('admitted while backing off');
      clock.now += r.retryAfterMs;
      expect(guess(throttle, 'BankA/alice', 'p').ok).to.equal(true);
      const next = throttle.begin('BankA/alice', 'p');
      delays.push(next.ok ? 0 : next.retryAfterMs);
    }
    expect(delays).to.deep.equal([2000, 4000, 8000, 8000, 8000]);
    // Other accounts are not affected.
    expect(throttle.begin('BankA/bob', 'q').ok).to.equal(true);
  });

  it('clears the account on a successful login', () => {
    const { throttle } = setup();
    for (let i = 0; i < 2; i++) guess(throttle, 'BankA/alice', 'p');
    const ok = throttle.begin('BankA/alice', 'p');
    if (!ok.ok) throw new Error('refused');
    ok.attempt.succeeded();
    // Three more failures are needed again before any back-off.
    for (let i = 0; i < 3; i++) expect(guess(throttle, 'BankA/alice', 'p').ok).to.equal(true);
    expect(throttle.begin('BankA/alice', 'p').ok).to.equal(false);
  });

  it('counts nothing for an attempt that ended without an answer', () => {
    const { throttle } = setup();
    for (let i = 0; i < 10; i++) {
      const a = throttle.begin('BankA/alice', 'p');
      if (!a.ok) throw new Error('refused');
      a.attempt.ended();
    }
    expect(throttle.sizes).to.deep.equal({ accounts: 0, peers: 0 });
  });

  it('throttles one caller guessing across many accounts; other callers go on', () => {
    const { throttle } = setup();
    for (let i = 0; i < 10; i++) expect(guess(throttle, `BankA/user${i}`, 'client@10.0.0.1').ok).to.equal(true);
    expect(throttle.begin('BankA/fresh', 'client@10.0.0.1')).to.deep.include({ ok: false, scope: 'peer', retryAfterMs: 1000 });
    expect(throttle.begin('BankA/fresh', 'client@10.0.0.2').ok).to.equal(true);
  });

  it('lets no more parallel guesses through than failures are left', () => {
    const { throttle } = setup();
    const started = [1, 2, 3, 4].map(() => throttle.begin('BankA/alice', 'p'));
    expect(started.map((s) => s.ok)).to.deep.equal([true, true, true, false]);
    for (const s of started) if (s.ok) s.attempt.failed();
    // At the threshold: refused until the back-off ends, then one at a time.
    expect(throttle.begin('BankA/alice', 'p').ok).to.equal(false);
  });

  it('forgets failures after the window without one', () => {
    const { clock, throttle } = setup();
    for (let i = 0; i < 3; i++) guess(throttle, 'BankA/alice', 'p');
    clock.now = 1000 + 60_001; // the back-off ended at 1000; the window counts from there
    for (let i = 0; i < 3; i++) expect(guess(throttle, 'BankA/alice', 'p').ok).to.equal(true);
  });

  it('keeps memory bounded: the least recently failed key is evicted first', () => {
    const { throttle } = setup({ ...LIMITS, loginThrottleEntriesMax: 4 });
    for (let i = 0; i < 3; i++) guess(throttle, 'BankA/first', `p${i}`);
    expect(throttle.begin('BankA/first', 'x').ok).to.equal(false);
    for (let i = 0; i < 50; i++) guess(throttle, `BankA/u${i}`, `q${i}`);
    expect(throttle.sizes.accounts).to.equal(4);
    expect(throttle.sizes.peers).to.equal(4);
    expect(throttle.begin('BankA/first', 'x').ok).to.equal(true);
  });

  it('with the default config an attacker gets at most 17 guesses at an account in any hour, 109 a day (README)', () => {
    // Strategies: guess the moment the throttle allows (greedy), or stop after k guesses and wait
    // until the failures are forgotten; each guess from a fresh address (the worst case).
    const HOUR = 3_600_000;
    const DAY = 24 * HOUR;
    const run = (stopAfter: number) => {
      const { clock, throttle } = setup(DEFAULTS);
      const times: number[] = [];
      let inCycle = 0;
      while (clock.now < DAY) {
        const r = guess(throttle, 'BankA/alice', `peer${times.length}-${clock.now}`);
        if (!r.ok) {
          clock.now += r.retryAfterMs;
          continue;
        }
        times.push(clock.now);
        if (++inCycle === stopAfter) {
          const left = throttle.begin('BankA/alice', 'probe');
          if (left.ok) left.attempt.ended();
          clock.now += (left.ok ? 0 : left.retryAfterMs) + DEFAULTS.loginFailureWindowMs + 1;
          inCycle = 0;
        }
      }
      let maxPerHour = 0;
      for (let i = 0, j = 0; i < times.length; i++) {
        while (j < times.length && times[j]! < times[i]! + HOUR) j++;
        maxPerHour = Math.max(maxPerHour, j - i);
      }
      const firstHours = [0, 1, 2, 3].map((h) => times.filter((t) => t >= h * HOUR && t < (h + 1) * HOUR).length);
      return { perDay: times.length, maxPerHour, firstHours };
    };
    const greedy = run(Infinity);
    expect(greedy).to.deep.equal({ perDay: 109, maxPerHour: 17, firstHours: [17, 4, 4, 4] });
    for (let k = 1; k <= 40; k++) {
      const r = run(k);
      expect(r.maxPerHour, `stop after ${k}`).to.be.at.most(17);
      expect(r.perDay, `stop after ${k}`).to.be.at.most(109);
    }
  });

  it('with several gateways, a database that does not answer leaves each instance its own throttle', async () => {
    const { throttle } = setup();
    const away = { query: () => Promise.reject(new Error('connection refused')) };
    const warnings: string[] = [];
    const logger = { ...silentLogger(), warn: (message: string) => { warnings.push(message); }, info: () => undefined } as unknown as Logger;
    const shared = SharedLoginFailures.open(away, { ...LIMITS, loginThrottlePruneIntervalMs: 3_600_000, loginThrottlePruneBatchMax: 10 }, systemClock, logger);
    try {
      const gate = sharedLoginGate(throttle, shared);
      for (let i = 1; i <= LIMITS.loginAccountFailuresMax; i++) {
        const a = await gate.begin('BankA/alice', 'p');
        expect(a.ok).to.equal(true);
        if (a.ok) expect(await a.attempt.failed()).to.deep.equal({ accountFailures: i, peerFailures: i });
      }
      expect(await gate.begin('BankA/alice', 'p')).to.deep.include({ ok: false, scope: 'account' });
      // One warning for the whole outage, not one per login.
      expect(warnings.filter((w) => w.startsWith('shared login throttle unreachable'))).to.have.length(1);
    } finally {
      shared.close();
    }
  });
});

import { expect } from 'chai';
import fc from 'fast-check';
import { decodePageToken, encodePageToken } from '../../src/bank/page-token.js';
import { legFromRequest } from '../../src/bank/validate.js';
import { AppError } from '../../src/core/errors.js';
import { CURRENCY_EXPONENTS, formatAmount, INT64_MAX, parseAmount } from '../../src/core/money.js';
import { isReason } from '../../src/core/reasons.js';
import {
  banksOf,
  legsOf,
  step,
  type Effect,
  type Event,
  type LegKind,
  type Limits,
  type Phase,
  type Tx,
} from '../../src/coordinator/index.js';
import { validateCreateTransfer, validateLogin } from '../../src/gateway/validate.js';

// Property-based tests of the pure parts (fast-check): every run draws new cases; a failure
// prints its seed and the shrunk counterexample, and `fc.assert(..., { seed })` replays it.

const RUNS = 300;
const CURRENCIES = Object.keys(CURRENCY_EXPONENTS);

describe('properties: money', () => {
  it('formatAmount then parseAmount gives the amount back, for every currency exponent', () => {
    fc.assert(fc.property(fc.constantFrom(...CURRENCIES), fc.bigInt({ min: 0n, max: INT64_MAX }), (currency, minor) => {
      const parsed = parseAmount(formatAmount(minor, currency), currency);
      expect(parsed).to.deep.equal({ ok: true, value: minor });
    }), { numRuns: RUNS });
  });

  it('a decimal with at most the exponent\'s places parses to the value it writes, and formats back canonically', () => {
    const decimal = fc.constantFrom(...CURRENCIES).chain((currency) => {
      const exp = CURRENCY_EXPONENTS[currency]!;
      const digit = fc.integer({ min: 0, max: 9 }).map(String);
      return fc.record({
        currency: fc.constant(currency),
        whole: fc.array(digit, { minLength: 1, maxLength: 12 }).map((d) => d.join('')),
        frac: fc.array(digit, { maxLength: exp }).map((d) => d.join('')),
      });
    });
    fc.assert(fc.property(decimal, ({ currency, whole, frac }) => {
      const exp = CURRENCY_EXPONENTS[currency]!;
      const text = frac === '' ? whole : `${whole}.${frac}`;
      const parsed = parseAmount(text, currency);
      const expected = BigInt(whole) * 10n ** BigInt(exp) + BigInt(frac.padEnd(exp, '0') || '0');
      expect(parsed).to.deep.equal({ ok: true, value: expected });
      // Formatting is canonical: parsing it again gives the same amount and the same text.
      const formatted = formatAmount(expected, currency);
      expect(parseAmount(formatted, currency)).to.deep.equal({ ok: true, value: expected });
      expect(formatAmount((parseAmount(formatted, currency) as { value: bigint }).value, currency)).to.equal(formatted);
    }), { numRuns: RUNS });
  });

  it('parseAmount answers any text with a value or an amount reason, never a throw', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom(...CURRENCIES, 'XXX', ''), (text, currency) => {
      const r = parseAmount(text, currency);
      if (r.ok) expect(r.value >= 0n && r.value <= INT64_MAX).to.equal(true);
      else expect(['INVALID_AMOUNT', 'AMOUNT_TOO_LARGE', 'INVALID_CURRENCY']).to.include(r.reason);
    }), { numRuns: RUNS });
  });
});

describe('properties: page tokens', () => {
  it('encode then decode gives the sequence number back', () => {
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: INT64_MAX }), (seq) => {
      expect(decodePageToken(encodePageToken(seq))).to.deep.equal({ ok: true, value: seq });
    }), { numRuns: RUNS });
  });

  it('any other text is INVALID_PAGE_TOKEN; an accepted token is the canonical encoding of its value', () => {
    // A valid token with its last character replaced: usually decodes to the same digits through the
    // unused low bits of base64, so only the canonical-encoding check refuses it.
    const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const nearValid = fc.tuple(fc.bigInt({ min: 1n, max: INT64_MAX }), fc.constantFrom(...B64URL))
      .map(([seq, last]) => encodePageToken(seq).slice(0, -1) + last);
    fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.base64String({ maxLength: 32 }), nearValid), (token) => {
      const r = decodePageToken(token);
      if (r.ok) expect(encodePageToken(r.value)).to.equal(token);
      else expect(r.reason).to.equal('INVALID_PAGE_TOKEN');
    }), { numRuns: RUNS });
  });
});

describe('properties: validation never throws an untyped error', () => {
  const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 70 }), fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/), fc.uuid());
  const amount = fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n });

  it('gateway: validateCreateTransfer and validateLogin return a result with a known reason', () => {
    const rules = { maxTransferAmountMinor: 100_000_000n, isKnownBank: (b: string) => b === 'BankA' || b === 'BankB' };
    fc.assert(fc.property(text, text, amount, fc.oneof(fc.constantFrom(...CURRENCIES), text), text, (key, toUsername, amountMinor, currency, toBank) => {
      const r = validateCreateTransfer({ idempotencyKey: key, toBank, toUsername, amountMinor, currency }, { bank: 'BankA', username: 'alice' }, rules);
      if (!r.ok) expect(isReason(r.reason), r.reason).to.equal(true);
      const login = validateLogin({ bank: toBank, username: toUsername, password: key });
      if (!login.ok) expect(login.reason).to.equal('INVALID_ARGUMENT');
    }), { numRuns: RUNS });
  });

  it('bank: legFromRequest returns a leg or throws an AppError with a known reason', () => {
    fc.assert(fc.property(text, text, amount, fc.oneof(fc.constantFrom(...CURRENCIES), text), text, text, (transactionId, username, amountMinor, currency, counterpartyBank, counterpartyUsername) => {
      try {
        const leg = legFromRequest('debit', { transactionId, username, amountMinor, currency, counterpartyBank, counterpartyUsername });
        expect(leg.amountMinor > 0n).to.equal(true);
      } catch (err) {
        expect(err).to.be.instanceOf(AppError);
        expect(isReason((err as AppError).reason)).to.equal(true);
      }
    }), { numRuns: RUNS });
  });
});

// ---- the coordinator against a small reference model ----

const LIMITS: Limits = { prepareTimeoutMs: 1000, replyAckWaitMs: 500 };

type VoteValue = 'yes' | 'no' | 'unknown-sent' | 'unknown-unsent';

/** What one leg's bank does: its answer, when it arrives, and how often (duplicates). */
interface LegScript {
  readonly vote: VoteValue;
  readonly atMs: number;
  readonly copies: number;
}

interface Script {
  readonly sameBank: boolean;
  readonly debit: LegScript;
  readonly credit: LegScript;
  readonly tickAtMs: readonly number[];
  /** Phase-2 acknowledgements: which awaited bank answers next (index), duplicates included. */
  readonly acks: readonly number[];
  /** Phase-1 events stepped between the decision's persist and its `persisted` (a slow disk). */
  readonly decisionWriteEvents: number;
  /** Limits.prepareWithBegin: the prepares leave with the begin record, and this many votes come before it is durable. */
  readonly withBegin: boolean;
  readonly votesBeforeBegin: number;
}

const legScript = fc.record({
  vote: fc.constantFrom<VoteValue>('yes', 'yes', 'yes', 'no', 'unknown-sent', 'unknown-unsent'),
  atMs: fc.integer({ min: 0, max: 1500 }),
  copies: fc.integer({ min: 1, max: 3 }),
});
const script: fc.Arbitrary<Script> = fc.record({
  sameBank: fc.boolean(),
  debit: legScript,
  credit: legScript,
  tickAtMs: fc.array(fc.integer({ min: 0, max: 2500 }), { maxLength: 4 }),
  acks: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 8 }),
  decisionWriteEvents: fc.integer({ min: 0, max: 3 }),
  withBegin: fc.boolean(),
  votesBeforeBegin: fc.integer({ min: 0, max: 4 }),
});

function voteEvent(leg: LegKind, vote: VoteValue, nowMs: number): Event {
  switch (vote) {
    case 'yes': return { type: 'vote', leg, vote: 'yes', nowMs };
    case 'no': return { type: 'vote', leg, vote: 'no', failure: { reason: 'INSUFFICIENT_FUNDS', message: 'no' }, nowMs };
    case 'unknown-sent': return { type: 'vote_unknown', leg, reason: 'BANK_UNAVAILABLE', message: 'down', sent: true, nowMs };
    case 'unknown-unsent': return { type: 'vote_unknown', leg, reason: 'BANK_UNAVAILABLE', message: 'down', sent: false, nowMs };
  }
}

/** The reference: decided by the first non-yes vote or a tick at the deadline; commit when both legs said yes first. */
function referenceDecision(events: readonly Event[]): 'commit' | 'abort' | undefined {
  const yes = new Set<LegKind>();
  for (const e of events) {
    if (e.type === 'tick' && e.nowMs >= LIMITS.prepareTimeoutMs) return 'abort';
    if (e.type === 'vote_unknown' || (e.type === 'vote' && e.vote === 'no')) return 'abort';
    if (e.type === 'vote' && e.vote === 'yes') yes.add(e.leg);
    if (yes.size === 2) return 'commit';
  }
  return undefined;
}

describe('properties: coordinator step against a reference model', () => {
  it('one decision, durable before any phase-2 send or reply; commit only when both legs voted yes first; final once every target acknowledged', () => {
    fc.assert(fc.property(script, (s) => {
      const tx: Tx = {
        id: '00000000-0000-7000-8000-000000000001', idempotencyKey: '00000000-0000-4000-8000-000000000002',
        from: { bank: 'BankA', username: 'alice' }, to: { bank: s.sameBank ? 'BankA' : 'BankB', username: 'bob' },
        amountMinor: 5n, currency: 'EUR', createdAtMs: 0,
      };
      // Phase 1: the votes and ticks in time order (a stable order for equal times).
      const timed: { atMs: number; event: Event }[] = [];
      for (const leg of ['debit', 'credit'] as const) {
        const ls = s[leg];
        for (let i = 0; i < ls.copies; i++) timed.push({ atMs: ls.atMs + i * 7, event: voteEvent(leg, ls.vote, ls.atMs + i * 7) });
      }
      for (const t of s.tickAtMs) timed.push({ atMs: t, event: { type: 'tick', nowMs: t } });
      timed.sort((a, b) => a.atMs - b.atMs);
      let events = timed.map((t) => t.event);
      const limits: Limits = { ...LIMITS, prepareWithBegin: s.withBegin };

      let r = step(undefined, { type: 'begin', tx, nowMs: 0 }, limits);
      const persistBegin = { type: 'persist', record: { type: 'begin', tx }, awaited: true };
      let phase: Phase;
      const effects: Effect[] = [];
      const stepped: Event[] = [];
      if (s.withBegin) {
        // The prepares leave with the begin record; the first votes come before it is durable and
        // decide nothing (a tick then has no deadline to pass). Its persisted decides on them.
        expect(r.effects[0]).to.deep.equal(persistBegin);
        expect(r.effects.slice(1).map((e) => e.type === 'send' && e.rpc)).to.deep.equal(['prepare', 'prepare']);
        phase = r.phase;
        const early: Event[] = events.filter((e) => e.type !== 'tick').slice(0, s.votesBeforeBegin);
        for (const e of early) {
          r = step(phase, e, limits);
          expect(r.effects, 'nothing before the begin record is durable').to.deep.equal([]);
          phase = r.phase;
          stepped.push(e);
        }
        events = events.filter((e) => !early.includes(e));
        r = step(phase, { type: 'persisted', record: 'begin', nowMs: 0 }, limits);
      } else {
        // Durable before send: the begin step only persists (awaited); the prepares follow its persisted.
        expect(r.effects).to.deep.equal([persistBegin]);
        r = step(r.phase, { type: 'persisted', record: 'begin' }, limits);
        expect(r.effects.map((e) => e.type === 'send' && e.rpc)).to.deep.equal(['prepare', 'prepare']);
        r = { phase: r.phase, effects: [] };
      }
      phase = r.phase;
      effects.push(...r.effects);
      /** Phase-1 events stepped while the decision was being written, and once it was durable (-1: not yet). */
      let writing = -1;
      if (r.effects.some((x) => x.type === 'persist' && x.record.type === 'decision')) {
        expect(r.effects, 'the decision step only persists').to.deep.equal([{ ...r.effects[0], awaited: true }]);
        writing = 0;
      }
      let durableAt = -1;
      /** effects[] index of the first effect of the decision's persisted step. */
      let durableEffectsAt = -1;
      const decisionDurable = () => {
        durableAt = stepped.length;
        durableEffectsAt = effects.length;
        r = step(phase, { type: 'persisted', record: 'decision' }, limits);
        phase = r.phase;
        effects.push(...r.effects);
      };
      if (writing >= s.decisionWriteEvents && durableAt < 0) decisionDurable();
      for (const e of events) {
        r = step(phase, e, limits);
        phase = r.phase;
        effects.push(...r.effects);
        stepped.push(e);
        if (writing >= 0 && durableAt < 0) writing++;
        if (r.effects.some((x) => x.type === 'persist' && x.record.type === 'decision')) {
          expect(writing, 'one decision').to.equal(-1);
          expect(r.effects, 'the decision step only persists').to.deep.equal([{ ...r.effects[0], awaited: true }]);
          writing = 0;
        }
        if (writing >= s.decisionWriteEvents && durableAt < 0) decisionDurable();
      }
      if (writing >= 0 && durableAt < 0) decisionDurable();
      const want = referenceDecision(stepped);
      const decisions = effects.filter((e) => e.type === 'persist' && e.record.type === 'decision');
      expect(decisions.length, 'decisions persisted').to.equal(want === undefined ? 0 : 1);
      if (want === undefined) {
        expect(phase.kind).to.equal('preparing');
        return;
      }
      const decision = decisions[0]!;
      expect(decision.type === 'persist' && decision.record.type === 'decision' && decision.record.decision).to.equal(want);
      // Persist, then send: no phase-2 send and no reply before the decision's persisted event.
      effects.forEach((e, i) => {
        if (e.type === 'reply' || e.type === 'send') expect(i).to.be.at.least(durableEffectsAt);
        if (e.type === 'send') expect(e.rpc).to.not.equal('prepare');
        if (e.type === 'persist') expect(e.awaited).to.equal(e.record.type === 'decision');
      });
      const targets = new Set(effects.flatMap((e) => (e.type === 'send' && e.rpc !== 'prepare' ? [e.bank] : [])));
      if (want === 'commit') expect([...targets].sort()).to.deep.equal([...banksOf(tx)].sort());
      for (const b of targets) expect(banksOf(tx)).to.include(b);

      // Phase 2: acknowledgements from the targets (duplicates and late votes are harmless).
      const rpc = want;
      const order = [...targets];
      for (const i of s.acks) {
        if (order.length === 0) break;
        r = step(phase, { type: 'ack', bank: order[i % order.length]!, rpc }, LIMITS);
        phase = r.phase;
        effects.push(...r.effects);
      }
      const acked = new Set(order.length === 0 ? [] : s.acks.map((i) => order[i % order.length]));
      // A holds-nothing vote (NO, or a prepare that never left) for every leg at a bank settles it too.
      const holdsNothing = (kind: LegKind) => s[kind].vote === 'no' || s[kind].vote === 'unknown-unsent';
      const settled = (b: string) => acked.has(b) || (want === 'abort' && legsOf(tx).filter((l) => l.bank === b).every((l) => holdsNothing(l.kind)));
      expect(phase.kind === 'committed' || phase.kind === 'aborted', `final after acks from ${[...acked].join(',')}`).to.equal(order.every(settled));
      if (phase.kind === 'committed' || phase.kind === 'aborted') expect(phase.kind).to.equal(want === 'commit' ? 'committed' : 'aborted');
      // At most one reply, and it tells the decision.
      const replies = effects.filter((e) => e.type === 'reply');
      expect(replies.length).to.be.at.most(1);
      for (const reply of replies) expect(reply.type === 'reply' && reply.outcome.kind).to.equal(want === 'commit' ? 'committed' : 'aborted');
      // Each leg's bank holds nothing after a NO or an unsent prepare: no Abort goes to a bank whose
      // every leg is such, as known when the Aborts leave (the decision durable).
      if (want === 'abort') {
        const known = stepped.slice(0, durableAt);
        const answered = (kind: LegKind) => known.some((e) => (e.type === 'vote' || e.type === 'vote_unknown') && e.leg === kind);
        for (const b of banksOf(tx)) {
          const mayHold = legsOf(tx).filter((l) => l.bank === b).some((l) => !answered(l.kind) || !holdsNothing(l.kind));
          expect(targets.has(b), `abort to ${b}`).to.equal(mayHold);
        }
      }
    }), { numRuns: 1000 });
  });
});

import { AssertionError, assert, unreachable } from '../core/assert.js';
import type { Failure } from '../core/errors.js';
import {
  banksOf,
  legsOf,
  type BankId,
  type Effect,
  type Event,
  type LegKind,
  type LegVote,
  type Limits,
  type Phase,
  type PhaseKind,
  type StepResult,
  type Tx,
} from './types.js';

// The 2PC coordinator as a pure transition function: (phase, event) -> (next phase, effects).
// It never performs I/O; the driver persists, sends and replies as the effects say, in order.
// Impossible (phase, event) pairs are bugs and throw; duplicate or late messages are ignored.

type Preparing = Extract<Phase, { kind: 'preparing' }>;
type Committing = Extract<Phase, { kind: 'committing' }>;
type Aborting = Extract<Phase, { kind: 'aborting' }>;

const unchanged = (phase: Phase): StepResult => ({ phase, effects: [] });

export function step(phase: Phase | undefined, event: Event, limits: Limits): StepResult {
  if (event.type === 'begin') {
    assert(phase === undefined, `begin for transaction ${event.tx.id} which is already ${phase?.kind}`);
    return begin(event.tx, event.nowMs, limits);
  }
  assert(phase !== undefined, `${event.type} for a transaction that never began`);
  switch (phase.kind) {
    case 'preparing':
      return onPreparing(phase, event, limits);
    case 'committing':
      return onCommitting(phase, event);
    case 'aborting':
      return onAborting(phase, event);
    case 'committed':
    case 'aborted':
      return onFinal(phase, event);
    default:
      return unreachable(phase, 'unknown phase');
  }
}

/** When the driver must deliver the next `tick`, or undefined when no deadline is pending. */
export function nextDeadlineMs(phase: Phase): number | undefined {
  if (phase.kind === 'preparing') return phase.deadlineAtMs;
  if (phase.kind === 'committing' && !phase.replied) return phase.replyAtMs;
  return undefined;
}

function begin(tx: Tx, nowMs: number, limits: Limits): StepResult {
  assert(tx.amountMinor > 0n, `transaction ${tx.id}: amount must be positive`);
  assert(tx.from.bank !== tx.to.bank || tx.from.username !== tx.to.username, `transaction ${tx.id}: same account`);
  const phase: Preparing = { kind: 'preparing', tx, votes: new Map(), deadlineAtMs: nowMs + limits.prepareTimeoutMs };
  // The begin record (with the idempotency key) is durable before any prepare leaves.
  const effects: Effect[] = [{ type: 'persist', record: { type: 'begin', tx } }];
  for (const leg of legsOf(tx)) effects.push({ type: 'send', rpc: 'prepare', leg });
  return { phase, effects };
}

function onPreparing(phase: Preparing, event: Exclude<Event, { type: 'begin' }>, limits: Limits): StepResult {
  switch (event.type) {
    case 'vote':
    case 'vote_unknown': {
      const vote = legVoteOf(event);
      const previous = phase.votes.get(event.leg);
      if (previous) {
        // The same answer twice adds nothing; a leg answering both ways is a bug somewhere.
        assertSameVote(phase.tx, event.leg, previous, vote);
        return unchanged(phase);
      }
      const votes = new Map(phase.votes).set(event.leg, vote);
      if (vote.vote !== 'yes') return decideAbort({ ...phase, votes }, vote.failure);
      if (legsOf(phase.tx).every((leg) => votes.get(leg.kind)?.vote === 'yes')) {
        return decideCommit(phase.tx, event.nowMs, limits);
      }
      return unchanged({ ...phase, votes });
    }
    case 'tick':
      if (event.nowMs < phase.deadlineAtMs) return unchanged(phase);
      return decideAbort(phase, {
        reason: 'PREPARE_TIMEOUT',
        message: `the banks did not all answer within ${limits.prepareTimeoutMs} ms; nothing was transferred`,
      });
    case 'ack':
      throw new AssertionError(`transaction ${phase.tx.id}: ${event.rpc} ack from ${event.bank} while preparing`);
    default:
      return unreachable(event, 'unknown event');
  }
}

function legVoteOf(event: Extract<Event, { type: 'vote' | 'vote_unknown' }>): LegVote {
  if (event.type === 'vote_unknown') {
    return { vote: 'unknown', failure: { reason: event.reason, message: event.message }, sent: event.sent };
  }
  return event.vote === 'yes' ? { vote: 'yes' } : { vote: 'no', failure: event.failure };
}

function assertSameVote(tx: Tx, leg: LegKind, a: LegVote, b: LegVote): void {
  const same = a.vote === b.vote && (a.vote === 'yes' || a.failure.reason === (b as Exclude<LegVote, { vote: 'yes' }>).failure.reason);
  assert(same, `transaction ${tx.id}: ${leg} leg voted ${a.vote} then ${b.vote}`);
}

/** A leg that voted NO, or whose prepare never left, holds nothing at its bank. */
function holdsNothing(vote: LegVote | undefined): boolean {
  return vote !== undefined && (vote.vote === 'no' || (vote.vote === 'unknown' && !vote.sent));
}

/**
 * Abort goes to every bank that may hold something for the transaction: a leg that voted yes, or
 * whose prepare may still arrive (no answer yet, or failed after leaving). Abort there also leaves
 * a tombstone that makes a late prepare vote NO.
 */
function abortTargets(tx: Tx, votes: ReadonlyMap<LegKind, LegVote>): BankId[] {
  return banksOf(tx).filter((bank) => legsOf(tx).some((leg) => leg.bank === bank && !holdsNothing(votes.get(leg.kind))));
}

function decideCommit(tx: Tx, nowMs: number, limits: Limits): StepResult {
  const awaiting = banksOf(tx);
  const phase: Committing = {
    kind: 'committing',
    tx,
    awaiting: new Set(awaiting),
    replyAtMs: nowMs + limits.replyAckWaitMs,
    replied: false,
  };
  // Persist the decision first: no Commit may leave before it is durable.
  const effects: Effect[] = [{ type: 'persist', record: { type: 'decision', txId: tx.id, decision: 'commit', awaiting } }];
  for (const bank of awaiting) effects.push({ type: 'send', rpc: 'commit', bank });
  return { phase, effects };
}

function decideAbort(phase: Preparing, failure: Failure): StepResult {
  const { tx, votes } = phase;
  const awaiting = abortTargets(tx, votes);
  // The first non-yes vote decides, so the other leg is yes or unanswered: its bank is a target.
  assert(awaiting.length > 0, `transaction ${tx.id}: abort decided with no bank to tell`);
  const effects: Effect[] = [
    { type: 'persist', record: { type: 'decision', txId: tx.id, decision: 'abort', failure, awaiting } },
  ];
  for (const bank of awaiting) effects.push({ type: 'send', rpc: 'abort', bank });
  // No money moves on abort, so the caller can have the answer now.
  effects.push({ type: 'reply', outcome: { kind: 'aborted', failure } });
  return { phase: { kind: 'aborting', tx, failure, votes, awaiting: new Set(awaiting) }, effects };
}

/** `bank` needs no more phase-2 calls: record it, or complete when it was the last one. */
function settle(phase: Committing | Aborting, bank: BankId): StepResult {
  const { tx } = phase;
  if (!phase.awaiting.has(bank)) return unchanged(phase);
  const awaiting = new Set(phase.awaiting);
  awaiting.delete(bank);
  if (awaiting.size > 0) {
    return {
      phase: { ...phase, awaiting },
      effects: [{ type: 'persist', record: { type: 'ack', txId: tx.id, bank } }],
    };
  }
  if (phase.kind === 'aborting') {
    const outcome = { kind: 'aborted', failure: phase.failure } as const;
    return {
      phase: { kind: 'aborted', tx, failure: phase.failure },
      effects: [{ type: 'persist', record: { type: 'completed', txId: tx.id, outcome } }],
    };
  }
  const effects: Effect[] = [{ type: 'persist', record: { type: 'completed', txId: tx.id, outcome: { kind: 'committed' } } }];
  if (!phase.replied) effects.push({ type: 'reply', outcome: { kind: 'committed' } });
  return { phase: { kind: 'committed', tx }, effects };
}

function assertAckFits(tx: Tx, event: Extract<Event, { type: 'ack' }>, expected: 'commit' | 'abort', kind: PhaseKind): void {
  assert(event.rpc === expected, `transaction ${tx.id}: ${event.rpc} ack from ${event.bank} while ${kind}`);
  assert(banksOf(tx).includes(event.bank), `transaction ${tx.id}: ack from ${event.bank}, not a bank of it`);
}

function onCommitting(phase: Committing, event: Exclude<Event, { type: 'begin' }>): StepResult {
  const { tx } = phase;
  switch (event.type) {
    case 'vote':
      // Every leg already voted yes to get here: only a repeated yes is possible.
      assert(event.vote === 'yes', `transaction ${tx.id}: ${event.leg} leg voted no after voting yes`);
      return unchanged(phase);
    case 'vote_unknown':
      throw new AssertionError(`transaction ${tx.id}: ${event.leg} leg reported unknown after voting yes`);
    case 'tick':
      if (phase.replied || event.nowMs < phase.replyAtMs) return unchanged(phase);
      // A bank is slow to acknowledge; the decision is final, so the caller gets COMMITTED now.
      return { phase: { ...phase, replied: true }, effects: [{ type: 'reply', outcome: { kind: 'committed' } }] };
    case 'ack':
      assertAckFits(tx, event, 'commit', phase.kind);
      return settle(phase, event.bank);
    default:
      return unreachable(event, 'unknown event');
  }
}

function onAborting(phase: Aborting, event: Exclude<Event, { type: 'begin' }>): StepResult {
  const { tx } = phase;
  switch (event.type) {
    case 'vote':
    case 'vote_unknown': {
      // A late answer. A yes is released by the Abort already sent (or refused by its
      // tombstone); a NO or an unsent prepare means that leg holds nothing.
      const vote = legVoteOf(event);
      const previous = phase.votes.get(event.leg);
      if (previous) {
        assertSameVote(tx, event.leg, previous, vote);
        return unchanged(phase);
      }
      const votes = new Map(phase.votes).set(event.leg, vote);
      const next: Aborting = { ...phase, votes };
      const bank = legsOf(tx).find((l) => l.kind === event.leg)?.bank as BankId;
      if (abortTargets(tx, votes).includes(bank)) return unchanged(next);
      return settle(next, bank);
    }
    case 'tick':
      return unchanged(phase);
    case 'ack':
      assertAckFits(tx, event, 'abort', phase.kind);
      return settle(phase, event.bank);
    default:
      return unreachable(event, 'unknown event');
  }
}

function onFinal(phase: Extract<Phase, { kind: 'committed' | 'aborted' }>, event: Exclude<Event, { type: 'begin' }>): StepResult {
  const { tx } = phase;
  switch (event.type) {
    case 'vote':
      // Late: after commit only a repeated yes is possible; after abort anything may trail in.
      assert(phase.kind === 'aborted' || event.vote === 'yes', `transaction ${tx.id}: no vote after commit`);
      return unchanged(phase);
    case 'vote_unknown':
      assert(phase.kind === 'aborted', `transaction ${tx.id}: unknown vote after commit`);
      return unchanged(phase);
    case 'tick':
      return unchanged(phase);
    case 'ack':
      // A duplicate acknowledgement.
      assertAckFits(tx, event, phase.kind === 'committed' ? 'commit' : 'abort', phase.kind);
      return unchanged(phase);
    default:
      return unreachable(event, 'unknown event');
  }
}

import { AssertionError, assert, unreachable } from '../core/assert.js';
import type { Failure } from '../core/errors.js';
import { testBugs } from '../core/test-bugs.js';
import {
  banksOf,
  legsOf,
  type BankId,
  type Effect,
  type Event,
  type LegKind,
  type LegVote,
  type Limits,
  type Outcome,
  type Phase,
  type PhaseKind,
  type StepResult,
  type Tx,
} from './types.js';

// The 2PC coordinator as a pure transition function: (phase, event) -> (next phase, effects).
// It never performs I/O; the driver persists, sends and replies as the effects say, in order.
// Impossible (phase, event) pairs are bugs and throw; duplicate or late messages are ignored.
//
// Durable before send is a rule of this function, not of the driver: a step that writes the begin
// or the decision record emits only the (awaited) persist; the prepares, the Commits/Aborts and
// the reply are emitted by the step of the `persisted` event that the driver delivers once the
// log reports that record durable (etcd raft's async storage writes). One exception, for a log
// only this gateway answers from (Limits.prepareWithBegin): the prepares leave with the begin
// record, and the decision waits for it. Ack and completed records are not awaited, so they add
// no latency.

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
  // Before its record is durable a phase waits for `persisted`, not for time.
  if (phase.kind === 'preparing' && phase.begun) return phase.deadlineAtMs;
  if (phase.kind === 'committing' && phase.durable && !phase.replied) return phase.replyAtMs;
  return undefined;
}

/**
 * What a caller still waiting may be told now without any further step (the driver stopping, or
 * its run taken over): the decision once it is durable; undefined while undecided or while the
 * decision is still being written.
 */
export function durableOutcome(phase: Phase): Outcome | undefined {
  switch (phase.kind) {
    case 'preparing':
      return undefined;
    case 'committing':
      return phase.durable ? { kind: 'committed' } : undefined;
    case 'aborting':
      return phase.durable ? { kind: 'aborted', failure: phase.failure } : undefined;
    case 'committed':
      return { kind: 'committed' };
    case 'aborted':
      return { kind: 'aborted', failure: phase.failure };
    default:
      return unreachable(phase, 'unknown phase');
  }
}

function begin(tx: Tx, nowMs: number, limits: Limits): StepResult {
  assert(tx.amountMinor > 0n, `transaction ${tx.id}: amount must be positive`);
  assert(tx.from.bank !== tx.to.bank || tx.from.username !== tx.to.username, `transaction ${tx.id}: same account`);
  const phase: Preparing = { kind: 'preparing', tx, begun: false, votes: new Map(), deadlineAtMs: nowMs + limits.prepareTimeoutMs };
  const persist: Effect = { type: 'persist', record: { type: 'begin', tx }, awaited: true };
  // The prepares leave beside the begin record (votes may come before it is durable, and wait), or
  // once it is durable: then the key is claimed before any prepare, on its `persisted`.
  return { phase, effects: limits.prepareWithBegin ? [persist, ...prepares(tx)] : [persist] };
}

function prepares(tx: Tx): Effect[] {
  return legsOf(tx).map((leg) => ({ type: 'send', rpc: 'prepare', leg }));
}

function onPreparing(phase: Preparing, event: Exclude<Event, { type: 'begin' }>, limits: Limits): StepResult {
  if (!phase.begun) {
    // Only the begin record's durability lets the transfer decide; votes that come first wait.
    if (event.type === 'tick') return unchanged(phase);
    if (event.type === 'persisted') {
      assert(event.record === 'begin', `transaction ${phase.tx.id}: ${event.record} persisted before its begin record`);
      if (!limits.prepareWithBegin) return { phase: { ...phase, begun: true }, effects: prepares(phase.tx) };
      assert(event.nowMs !== undefined, `transaction ${phase.tx.id}: begin persisted without its time`);
      return decideOnVotes({ ...phase, begun: true }, event.nowMs, limits);
    }
    assert(limits.prepareWithBegin, `transaction ${phase.tx.id}: ${event.type} before any prepare left`);
  }
  switch (event.type) {
    case 'persisted':
      throw new AssertionError(`transaction ${phase.tx.id}: ${event.record} persisted again while preparing`);
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
      if (!phase.begun) return unchanged({ ...phase, votes });
      return decideOnVotes({ ...phase, votes }, event.nowMs, limits);
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
  const record = { type: 'decision', txId: tx.id, decision: 'commit', awaiting } as const;
  const phase: Committing = {
    kind: 'committing',
    tx,
    durable: false,
    awaiting: new Set(awaiting),
    replyWhenDurable: limits.replyAckWaitMs === 0,
    replyAtMs: nowMs + limits.replyAckWaitMs,
    replied: false,
  };
  if (testBugs.commitBeforeDecisionDurable) {
    // The broken variant (simulator only): Commits leave with the decision not yet on disk.
    const effects: Effect[] = [{ type: 'persist', record, awaited: false }];
    for (const bank of awaiting) effects.push({ type: 'send', rpc: 'commit', bank });
    return { phase: { ...phase, durable: true }, effects };
  }
  // No Commit may leave before the decision is durable: they go out on its `persisted`.
  return { phase, effects: [{ type: 'persist', record, awaited: true }] };
}

/** The decision is durable: phase 2 starts (and an abort is answered, no money moved). */
function decisionDurable(phase: Committing | Aborting): StepResult {
  const { tx } = phase;
  assert(!phase.durable, `transaction ${tx.id}: decision persisted twice`);
  if (phase.kind === 'committing') {
    const effects: Effect[] = [...phase.awaiting].map((bank) => ({ type: 'send', rpc: 'commit', bank }));
    // The decision is final once durable: the caller may hear COMMITTED with the Commits leaving.
    if (phase.replyWhenDurable && !phase.replied) {
      return { phase: { ...phase, durable: true, replied: true }, effects: [...effects, { type: 'reply', outcome: { kind: 'committed' } }] };
    }
    return { phase: { ...phase, durable: true }, effects };
  }
  const reply: Effect[] = phase.replied ? [] : [{ type: 'reply', outcome: { kind: 'aborted', failure: phase.failure } }];
  if (phase.awaiting.size === 0) {
    // Late answers settled every bank while the decision was being written.
    const outcome = { kind: 'aborted', failure: phase.failure } as const;
    return {
      phase: { kind: 'aborted', tx, failure: phase.failure },
      effects: [{ type: 'persist', record: { type: 'completed', txId: tx.id, outcome }, awaited: false }, ...reply],
    };
  }
  const effects: Effect[] = [...phase.awaiting].map((bank) => ({ type: 'send', rpc: 'abort', bank }));
  return { phase: { ...phase, durable: true, replied: true }, effects: [...effects, ...reply] };
}

/** Decides once the votes allow it: the first leg (in arrival order) that did not vote yes aborts; all yes commits. */
function decideOnVotes(phase: Preparing, nowMs: number, limits: Limits): StepResult {
  for (const vote of phase.votes.values()) if (vote.vote !== 'yes') return decideAbort(phase, vote.failure);
  if (legsOf(phase.tx).every((leg) => phase.votes.get(leg.kind)?.vote === 'yes')) return decideCommit(phase.tx, nowMs, limits);
  return unchanged(phase);
}

function decideAbort(phase: Preparing, failure: Failure): StepResult {
  const { tx, votes } = phase;
  const awaiting = abortTargets(tx, votes);
  // Decided at the first non-yes vote, the other leg is yes or unanswered: its bank is a target.
  // Votes that waited for the begin record may all hold nothing: then no bank is told.
  assert(awaiting.length > 0 || legsOf(tx).every((leg) => votes.has(leg.kind)), `transaction ${tx.id}: abort decided with no bank to tell`);
  // Aborts and the answer (no money moves on abort) go out on the decision's `persisted`.
  return {
    phase: { kind: 'aborting', tx, failure, durable: false, replied: false, votes, awaiting: new Set(awaiting) },
    effects: [{ type: 'persist', record: { type: 'decision', txId: tx.id, decision: 'abort', failure, awaiting }, awaited: true }],
  };
}

/** `bank` needs no more phase-2 calls: record it, or complete when it was the last one. */
function settle(phase: Committing | Aborting, bank: BankId): StepResult {
  const { tx } = phase;
  if (!phase.awaiting.has(bank)) return unchanged(phase);
  const awaiting = new Set(phase.awaiting);
  awaiting.delete(bank);
  // While the decision is still being written the transfer cannot complete: its reply and the
  // completion wait for `persisted` (only late votes settle a bank then, never an ack).
  if (awaiting.size > 0 || !phase.durable) {
    return {
      phase: { ...phase, awaiting },
      effects: [{ type: 'persist', record: { type: 'ack', txId: tx.id, bank }, awaited: false }],
    };
  }
  if (phase.kind === 'aborting') {
    const outcome = { kind: 'aborted', failure: phase.failure } as const;
    return {
      phase: { kind: 'aborted', tx, failure: phase.failure },
      effects: [{ type: 'persist', record: { type: 'completed', txId: tx.id, outcome }, awaited: false }],
    };
  }
  // The decision is durable, so the answer need not wait for the completed record.
  const effects: Effect[] = [{ type: 'persist', record: { type: 'completed', txId: tx.id, outcome: { kind: 'committed' } }, awaited: false }];
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
    case 'persisted':
      assert(event.record === 'decision', `transaction ${tx.id}: ${event.record} persisted while committing`);
      return decisionDurable(phase);
    case 'tick':
      if (!phase.durable || phase.replied || event.nowMs < phase.replyAtMs) return unchanged(phase);
      // A bank is slow to acknowledge; the decision is final, so the caller gets COMMITTED now.
      return { phase: { ...phase, replied: true }, effects: [{ type: 'reply', outcome: { kind: 'committed' } }] };
    case 'ack':
      assertAckFits(tx, event, 'commit', phase.kind);
      assert(phase.durable, `transaction ${tx.id}: commit ack from ${event.bank} before the decision is durable`);
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
    case 'persisted':
      // A prepare deadline cannot pass before the begin record is durable (no tick is due then),
      // so only the decision can be reported here.
      assert(event.record === 'decision', `transaction ${tx.id}: ${event.record} persisted while aborting`);
      return decisionDurable(phase);
    case 'tick':
      return unchanged(phase);
    case 'ack':
      assertAckFits(tx, event, 'abort', phase.kind);
      assert(phase.durable, `transaction ${tx.id}: abort ack from ${event.bank} before the decision is durable`);
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
    case 'persisted':
      throw new AssertionError(`transaction ${tx.id}: ${event.record} persisted while ${phase.kind}`);
    case 'ack':
      // A duplicate acknowledgement.
      assertAckFits(tx, event, phase.kind === 'committed' ? 'commit' : 'abort', phase.kind);
      return unchanged(phase);
    default:
      return unreachable(event, 'unknown event');
  }
}

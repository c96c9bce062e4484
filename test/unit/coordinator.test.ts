import { expect } from 'chai';
import {
  PRESUMED_ABORT,
  durableOutcome,
  nextDeadlineMs,
  recover,
  replayRecords,
  step,
  type DurableTx,
  type Effect,
  type Event,
  type LegKind,
  type Limits,
  type LogRecord,
  type Phase,
  type Tx,
} from '../../src/coordinator/index.js';
import { AssertionError } from '../../src/core/assert.js';
import { isReason } from '../../src/core/reasons.js';
import { resetTestBugs, testBugs } from '../../src/core/test-bugs.js';

// Event scripts in the style of etcd raft's testdata: each command line is an event, and the
// `>` lines after it are the expected phase and then the effects, in order. `persisted begin` /
// `persisted decision` is the log reporting an awaited record durable. `crash` rebuilds the
// durable rows from every record persisted so far and prints what recovery does with them.

const limits: Limits = { prepareTimeoutMs: 5000, replyAckWaitMs: 2000 };

const crossBank: Tx = {
  id: 'tx-1',
  idempotencyKey: '6f1c2a9e-8d7b-4c3a-9e1f-2b3c4d5e6f70',
  from: { bank: 'BankA', username: 'alice' },
  to: { bank: 'BankB', username: 'bob' },
  amountMinor: 1250n,
  currency: 'EUR',
  createdAtMs: 1000,
};
const sameBank: Tx = { ...crossBank, id: 'tx-2', to: { bank: 'BankA', username: 'carol' } };

function renderPhase(p: Phase): string {
  switch (p.kind) {
    case 'preparing': {
      const votes = [...p.votes].map(([leg, v]) => `${leg}:${v.vote}`).join(',');
      return `preparing votes=${votes} deadline=${p.deadlineAtMs}${p.begun ? '' : ' begin-not-durable'}`;
    }
    case 'committing':
      return `committing awaiting=${[...p.awaiting].join(',')} replyAt=${p.replyAtMs} replied=${p.replied}${p.durable ? '' : ' decision-not-durable'}`;
    case 'aborting':
      return `aborting ${p.failure.reason} awaiting=${[...p.awaiting].join(',')}${p.durable ? '' : ' decision-not-durable'}`;
    case 'committed':
      return 'committed';
    case 'aborted':
      return `aborted ${p.failure.reason}`;
  }
}

function renderRecord(r: LogRecord): string {
  switch (r.type) {
    case 'begin':
      return 'begin';
    case 'decision':
      return r.decision === 'commit'
        ? `decision commit awaiting=${r.awaiting.join(',')}`
        : `decision abort ${r.failure.reason} awaiting=${r.awaiting.join(',')}`;
    case 'ack':
      return `ack ${r.bank}`;
    case 'completed':
      return r.outcome.kind === 'committed' ? 'completed committed' : `completed aborted ${r.outcome.failure.reason}`;
  }
}

function renderEffect(e: Effect): string {
  if (e.type === 'persist') return `persist ${renderRecord(e.record)}${e.awaited ? ' (awaited)' : ''}`;
  if (e.type === 'reply') return e.outcome.kind === 'committed' ? 'reply committed' : `reply aborted ${e.outcome.failure.reason}`;
  if (e.rpc === 'prepare') return `send prepare ${e.leg.kind}@${e.leg.bank}`;
  return `send ${e.rpc} ${e.bank}`;
}

function parseEvent(line: string, tx: Tx): Event {
  const words = line.split(/\s+/);
  const arg = (name: string) => {
    const w = words.find((x) => x.startsWith(`${name}=`));
    if (!w) throw new Error(`script: "${line}" needs ${name}=`);
    return Number(w.slice(name.length + 1));
  };
  const [cmd, a, b, c] = words;
  switch (cmd) {
    case 'begin':
      return { type: 'begin', tx, nowMs: arg('now') };
    case 'vote':
      if (b === 'yes') return { type: 'vote', leg: a as LegKind, vote: 'yes', nowMs: arg('now') };
      if (!c || !isReason(c)) throw new Error(`script: bad reason in "${line}"`);
      return { type: 'vote', leg: a as LegKind, vote: 'no', failure: { reason: c, message: c }, nowMs: arg('now') };
    case 'unknown':
      if (b !== 'BANK_UNAVAILABLE' && b !== 'PREPARE_TIMEOUT') throw new Error(`script: bad reason in "${line}"`);
      return { type: 'vote_unknown', leg: a as LegKind, reason: b, message: b, sent: c === 'sent', nowMs: arg('now') };
    case 'ack':
      return { type: 'ack', bank: a as string, rpc: b as 'commit' | 'abort' };
    case 'tick':
      return { type: 'tick', nowMs: arg('now') };
    case 'persisted':
      if (a !== 'begin' && a !== 'decision') throw new Error(`script: bad record in "${line}"`);
      return { type: 'persisted', record: a };
    default:
      throw new Error(`script: unknown command "${line}"`);
  }
}

/** Runs a script; returns the actual transcript, to compare with the script itself. */
function runScript(script: string, tx: Tx, scriptLimits: Limits = limits): { expected: string; actual: string } {
  const lines = script.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const expected = lines.join('\n');
  const out: string[] = [];
  const records: LogRecord[] = [];
  let phase: Phase | undefined;
  for (const line of lines) {
    if (line.startsWith('>')) continue;
    out.push(line);
    if (line === 'crash') {
      // Only what was persisted survives; the script goes on from the recovered phase, and what
      // recovery persists (a presumed-abort decision) is on disk for the next crash.
      const rows = replayRecords(records);
      const { phases, effects } = recover(rows);
      phase = phases.get(tx.id);
      for (const [id, p] of phases) {
        out.push(`> ${renderPhase(p)}`);
        for (const e of effects.get(id) ?? []) {
          out.push(`> ${renderEffect(e)}`);
          if (e.type === 'persist') records.push(e.record);
        }
      }
      continue;
    }
    try {
      const r = step(phase, parseEvent(line, tx), scriptLimits);
      phase = r.phase;
      out.push(`> ${renderPhase(r.phase)}`);
      for (const e of r.effects) {
        out.push(`> ${renderEffect(e)}`);
        if (e.type === 'persist') records.push(e.record);
      }
    } catch (err) {
      if (!(err instanceof AssertionError)) throw err;
      out.push('> assertion');
    }
  }
  return { expected, actual: out.join('\n') };
}

function check(script: string, tx: Tx = crossBank, scriptLimits: Limits = limits): void {
  const { expected, actual } = runScript(script, tx, scriptLimits);
  expect(actual).to.equal(expected);
}

describe('coordinator step (event scripts)', () => {
  it('cross-bank, all yes: decision persisted, commits sent, reply after the last ack', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      vote debit yes now=1150
      > preparing votes=debit:yes deadline=6000
      vote credit yes now=1200
      > committing awaiting=BankA,BankB replyAt=3200 replied=false decision-not-durable
      > persist decision commit awaiting=BankA,BankB (awaited)
      persisted decision
      > committing awaiting=BankA,BankB replyAt=3200 replied=false
      > send commit BankA
      > send commit BankB
      ack BankA commit
      > committing awaiting=BankB replyAt=3200 replied=false
      > persist ack BankA
      # duplicate ack and late duplicate vote add nothing
      ack BankA commit
      > committing awaiting=BankB replyAt=3200 replied=false
      vote credit yes now=1300
      > committing awaiting=BankB replyAt=3200 replied=false
      ack BankB commit
      > committed
      > persist completed committed
      > reply committed
      ack BankB commit
      > committed
      tick now=99999
      > committed
    `);
  });

  it('replyAckWaitMs 0 (the default): COMMITTED with the Commits, once the decision is durable, never before', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      vote credit yes now=1200
      > committing awaiting=BankA,BankB replyAt=1200 replied=false decision-not-durable
      > persist decision commit awaiting=BankA,BankB (awaited)
      # the reply's deadline has come, but the decision is not durable yet: nothing
      tick now=1300
      > committing awaiting=BankA,BankB replyAt=1200 replied=false decision-not-durable
      persisted decision
      > committing awaiting=BankA,BankB replyAt=1200 replied=true
      > send commit BankA
      > send commit BankB
      > reply committed
      ack BankA commit
      > committing awaiting=BankB replyAt=1200 replied=true
      > persist ack BankA
      tick now=1400
      > committing awaiting=BankB replyAt=1200 replied=true
      ack BankB commit
      > committed
      > persist completed committed
    `, crossBank, { ...limits, replyAckWaitMs: 0 });
  });

  it('same-bank, all yes: both legs prepared at one bank, one Commit', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankA
      vote credit yes now=1010
      > preparing votes=credit:yes deadline=6000
      vote debit yes now=1020
      > committing awaiting=BankA replyAt=3020 replied=false decision-not-durable
      > persist decision commit awaiting=BankA (awaited)
      persisted decision
      > committing awaiting=BankA replyAt=3020 replied=false
      > send commit BankA
      ack BankA commit
      > committed
      > persist completed committed
      > reply committed
    `, sameBank);
  });

  it('a slow bank: COMMITTED is answered at the reply deadline, phase 2 goes on', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      vote credit yes now=1200
      > committing awaiting=BankA,BankB replyAt=3200 replied=false decision-not-durable
      > persist decision commit awaiting=BankA,BankB (awaited)
      persisted decision
      > committing awaiting=BankA,BankB replyAt=3200 replied=false
      > send commit BankA
      > send commit BankB
      ack BankA commit
      > committing awaiting=BankB replyAt=3200 replied=false
      > persist ack BankA
      tick now=3199
      > committing awaiting=BankB replyAt=3200 replied=false
      tick now=3200
      > committing awaiting=BankB replyAt=3200 replied=true
      > reply committed
      tick now=3300
      > committing awaiting=BankB replyAt=3200 replied=true
      ack BankB commit
      > committed
      > persist completed committed
    `);
  });

  it('one NO: abort with the bank reason, Abort to the bank holding the other leg', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      vote credit no ACCOUNT_NOT_FOUND now=1200
      > aborting ACCOUNT_NOT_FOUND awaiting=BankA decision-not-durable
      > persist decision abort ACCOUNT_NOT_FOUND awaiting=BankA (awaited)
      persisted decision
      > aborting ACCOUNT_NOT_FOUND awaiting=BankA
      > send abort BankA
      > reply aborted ACCOUNT_NOT_FOUND
      vote credit no ACCOUNT_NOT_FOUND now=1250
      > aborting ACCOUNT_NOT_FOUND awaiting=BankA
      ack BankA abort
      > aborted ACCOUNT_NOT_FOUND
      > persist completed aborted ACCOUNT_NOT_FOUND
      ack BankA abort
      > aborted ACCOUNT_NOT_FOUND
    `);
  });

  it('NO first: the unanswered leg gets an Abort; a late yes keeps it, a late NO settles it', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit no INSUFFICIENT_FUNDS now=1100
      > aborting INSUFFICIENT_FUNDS awaiting=BankB decision-not-durable
      > persist decision abort INSUFFICIENT_FUNDS awaiting=BankB (awaited)
      persisted decision
      > aborting INSUFFICIENT_FUNDS awaiting=BankB
      > send abort BankB
      > reply aborted INSUFFICIENT_FUNDS
      vote credit yes now=1200
      > aborting INSUFFICIENT_FUNDS awaiting=BankB
      ack BankB abort
      > aborted INSUFFICIENT_FUNDS
      > persist completed aborted INSUFFICIENT_FUNDS
    `);
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit no CURRENCY_MISMATCH now=1100
      > aborting CURRENCY_MISMATCH awaiting=BankB decision-not-durable
      > persist decision abort CURRENCY_MISMATCH awaiting=BankB (awaited)
      persisted decision
      > aborting CURRENCY_MISMATCH awaiting=BankB
      > send abort BankB
      > reply aborted CURRENCY_MISMATCH
      vote credit no ACCOUNT_NOT_FOUND now=1200
      > aborted CURRENCY_MISMATCH
      > persist completed aborted CURRENCY_MISMATCH
    `);
  });

  it('prepare timeout via tick: abort PREPARE_TIMEOUT, Abort to every bank that may hold', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      tick now=5999
      > preparing votes=debit:yes deadline=6000
      tick now=6000
      > aborting PREPARE_TIMEOUT awaiting=BankA,BankB decision-not-durable
      > persist decision abort PREPARE_TIMEOUT awaiting=BankA,BankB (awaited)
      persisted decision
      > aborting PREPARE_TIMEOUT awaiting=BankA,BankB
      > send abort BankA
      > send abort BankB
      > reply aborted PREPARE_TIMEOUT
      # the hanging bank answers late: its yes is released by the Abort already sent
      vote credit yes now=7000
      > aborting PREPARE_TIMEOUT awaiting=BankA,BankB
      ack BankB abort
      > aborting PREPARE_TIMEOUT awaiting=BankA
      > persist ack BankB
      ack BankA abort
      > aborted PREPARE_TIMEOUT
      > persist completed aborted PREPARE_TIMEOUT
    `);
  });

  it('vote_unknown: an unreachable bank aborts at once with BANK_UNAVAILABLE', () => {
    // The prepare never left (no address): that bank gets no Abort; the other leg's bank does.
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      unknown credit BANK_UNAVAILABLE unsent now=1001
      > aborting BANK_UNAVAILABLE awaiting=BankA decision-not-durable
      > persist decision abort BANK_UNAVAILABLE awaiting=BankA (awaited)
      persisted decision
      > aborting BANK_UNAVAILABLE awaiting=BankA
      > send abort BankA
      > reply aborted BANK_UNAVAILABLE
      ack BankA abort
      > aborted BANK_UNAVAILABLE
      > persist completed aborted BANK_UNAVAILABLE
      vote debit yes now=1002
      > aborted BANK_UNAVAILABLE
    `);
    // A call that failed after leaving may still be prepared: that bank gets an Abort too.
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      unknown debit BANK_UNAVAILABLE sent now=1001
      > aborting BANK_UNAVAILABLE awaiting=BankA,BankB decision-not-durable
      > persist decision abort BANK_UNAVAILABLE awaiting=BankA,BankB (awaited)
      persisted decision
      > aborting BANK_UNAVAILABLE awaiting=BankA,BankB
      > send abort BankA
      > send abort BankB
      > reply aborted BANK_UNAVAILABLE
      unknown credit BANK_UNAVAILABLE unsent now=1002
      > aborting BANK_UNAVAILABLE awaiting=BankA
      > persist ack BankB
    `);
  });

  it('impossible pairs throw assertions', () => {
    check(`
      ack BankA commit
      > assertion
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      ack BankA commit
      > assertion
      begin now=1001
      > assertion
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      vote debit no INSUFFICIENT_FUNDS now=1101
      > assertion
      vote credit yes now=1200
      > committing awaiting=BankA,BankB replyAt=3200 replied=false decision-not-durable
      > persist decision commit awaiting=BankA,BankB (awaited)
      persisted decision
      > committing awaiting=BankA,BankB replyAt=3200 replied=false
      > send commit BankA
      > send commit BankB
      ack BankA abort
      > assertion
      ack BankC commit
      > assertion
      vote credit no INSUFFICIENT_FUNDS now=1300
      > assertion
    `);
  });

  it('sends and replies only in the step of their record\'s persisted event; other records are not awaited', () => {
    const scripts: Event[][] = [
      [{ type: 'vote', leg: 'debit', vote: 'yes', nowMs: 1 }, { type: 'vote', leg: 'credit', vote: 'yes', nowMs: 2 },
        { type: 'ack', bank: 'BankA', rpc: 'commit' }, { type: 'ack', bank: 'BankB', rpc: 'commit' }],
      [{ type: 'vote', leg: 'debit', vote: 'no', failure: { reason: 'INSUFFICIENT_FUNDS', message: 'x' }, nowMs: 1 },
        { type: 'ack', bank: 'BankB', rpc: 'abort' }],
      [{ type: 'tick', nowMs: 1_000_000 }, { type: 'ack', bank: 'BankA', rpc: 'abort' }, { type: 'ack', bank: 'BankB', rpc: 'abort' }],
    ];
    for (const events of scripts) {
      // Each step's results, with the persisted events (an instant disk) stepped right after.
      const results: { event: Event; effects: readonly Effect[] }[] = [];
      let phase: Phase | undefined;
      const feed = (event: Event) => {
        const r = step(phase, event, limits);
        phase = r.phase;
        results.push({ event, effects: r.effects });
        for (const e of r.effects) {
          if (e.type === 'persist' && e.awaited) feed({ type: 'persisted', record: e.record.type as 'begin' | 'decision' });
        }
      };
      feed({ type: 'begin', tx: crossBank, nowMs: 0 });
      for (const e of events) feed(e);
      expect(phase).to.have.property('kind').that.is.oneOf(['committed', 'aborted']);
      for (const { event, effects } of results) {
        const waited = effects.filter((e) => e.type === 'send' || (e.type === 'reply' && e.outcome.kind === 'aborted'));
        if (waited.length === 0) continue;
        const firstSend = waited[0]!;
        const record = firstSend.type === 'send' && firstSend.rpc === 'prepare' ? 'begin' : 'decision';
        expect(event, `${JSON.stringify(waited)} after`).to.deep.equal({ type: 'persisted', record });
      }
      const awaited = results.flatMap((r) => r.effects.flatMap((e) => (e.type === 'persist' && e.awaited ? [e.record.type] : [])));
      expect(awaited).to.deep.equal(['begin', 'decision']);
    }
  });

  it('before its begin record is durable nothing but persisted moves a transfer; no tick is due', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      tick now=7000
      > preparing votes= deadline=6000 begin-not-durable
      vote debit yes now=1100
      > assertion
      persisted decision
      > assertion
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      persisted begin
      > assertion
    `);
    const r = step(undefined, { type: 'begin', tx: crossBank, nowMs: 0 }, limits);
    expect(nextDeadlineMs(r.phase)).to.equal(undefined);
  });

  it('while the decision is being written: no Commit, no reply at the deadline, acks are assertions', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      vote credit yes now=1200
      > committing awaiting=BankA,BankB replyAt=3200 replied=false decision-not-durable
      > persist decision commit awaiting=BankA,BankB (awaited)
      tick now=3300
      > committing awaiting=BankA,BankB replyAt=3200 replied=false decision-not-durable
      ack BankA commit
      > assertion
      vote credit yes now=1300
      > committing awaiting=BankA,BankB replyAt=3200 replied=false decision-not-durable
      persisted decision
      > committing awaiting=BankA,BankB replyAt=3200 replied=false
      > send commit BankA
      > send commit BankB
      # the reply deadline passed while the decision was being written: the next tick answers
      tick now=3400
      > committing awaiting=BankA,BankB replyAt=3200 replied=true
      > reply committed
      persisted decision
      > assertion
    `);
  });

  it('late answers while the abort decision is being written settle their bank; the answer waits for the decision', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit no INSUFFICIENT_FUNDS now=1100
      > aborting INSUFFICIENT_FUNDS awaiting=BankB decision-not-durable
      > persist decision abort INSUFFICIENT_FUNDS awaiting=BankB (awaited)
      vote credit no ACCOUNT_NOT_FOUND now=1200
      > aborting INSUFFICIENT_FUNDS awaiting= decision-not-durable
      > persist ack BankB
      persisted decision
      > aborted INSUFFICIENT_FUNDS
      > persist completed aborted INSUFFICIENT_FUNDS
      > reply aborted INSUFFICIENT_FUNDS
    `);
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      unknown debit BANK_UNAVAILABLE sent now=1001
      > aborting BANK_UNAVAILABLE awaiting=BankA,BankB decision-not-durable
      > persist decision abort BANK_UNAVAILABLE awaiting=BankA,BankB (awaited)
      unknown credit BANK_UNAVAILABLE unsent now=1002
      > aborting BANK_UNAVAILABLE awaiting=BankA decision-not-durable
      > persist ack BankB
      ack BankA abort
      > assertion
      persisted decision
      > aborting BANK_UNAVAILABLE awaiting=BankA
      > send abort BankA
      > reply aborted BANK_UNAVAILABLE
    `);
  });

  it('durableOutcome: the decision once durable, nothing before', () => {
    const seen: (string | undefined)[] = [];
    const note = (p: Phase) => {
      const o = durableOutcome(p);
      seen.push(o && (o.kind === 'committed' ? o.kind : `${o.kind} ${o.failure.reason}`));
    };
    let r = step(undefined, { type: 'begin', tx: crossBank, nowMs: 0 }, limits);
    note(r.phase);
    r = step(r.phase, { type: 'persisted', record: 'begin' }, limits);
    r = step(r.phase, { type: 'vote', leg: 'debit', vote: 'yes', nowMs: 10 }, limits);
    r = step(r.phase, { type: 'vote', leg: 'credit', vote: 'yes', nowMs: 20 }, limits);
    note(r.phase);
    r = step(r.phase, { type: 'persisted', record: 'decision' }, limits);
    note(r.phase);
    r = step(undefined, { type: 'begin', tx: crossBank, nowMs: 0 }, limits);
    r = step(r.phase, { type: 'persisted', record: 'begin' }, limits);
    r = step(r.phase, { type: 'tick', nowMs: 9000 }, limits);
    note(r.phase);
    r = step(r.phase, { type: 'persisted', record: 'decision' }, limits);
    note(r.phase);
    expect(seen).to.deep.equal([undefined, undefined, 'committed', undefined, 'aborted PREPARE_TIMEOUT']);
  });

  it('the broken variant commitBeforeDecisionDurable sends Commit with the decision not awaited', () => {
    testBugs.commitBeforeDecisionDurable = true;
    try {
      check(`
        begin now=1000
        > preparing votes= deadline=6000 begin-not-durable
        > persist begin (awaited)
        persisted begin
        > preparing votes= deadline=6000
        > send prepare debit@BankA
        > send prepare credit@BankB
        vote debit yes now=1100
        > preparing votes=debit:yes deadline=6000
        vote credit yes now=1200
        > committing awaiting=BankA,BankB replyAt=3200 replied=false
        > persist decision commit awaiting=BankA,BankB
        > send commit BankA
        > send commit BankB
      `);
    } finally {
      resetTestBugs();
    }
  });

  it('nextDeadlineMs: prepare deadline, then the reply deadline, then none', () => {
    let r = step(undefined, { type: 'begin', tx: crossBank, nowMs: 0 }, limits);
    r = step(r.phase, { type: 'persisted', record: 'begin' }, limits);
    expect(nextDeadlineMs(r.phase)).to.equal(5000);
    r = step(r.phase, { type: 'vote', leg: 'debit', vote: 'yes', nowMs: 10 }, limits);
    r = step(r.phase, { type: 'vote', leg: 'credit', vote: 'yes', nowMs: 20 }, limits);
    expect(nextDeadlineMs(r.phase)).to.equal(undefined);
    r = step(r.phase, { type: 'persisted', record: 'decision' }, limits);
    expect(nextDeadlineMs(r.phase)).to.equal(2020);
    r = step(r.phase, { type: 'tick', nowMs: 2020 }, limits);
    expect(nextDeadlineMs(r.phase)).to.equal(undefined);
  });
});

describe('coordinator recovery', () => {
  it('preparing (crash after begin): presumed abort, decision persisted, Abort to every bank', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      crash
      > aborting TRANSACTION_ABORTED awaiting=BankA,BankB decision-not-durable
      > persist decision abort TRANSACTION_ABORTED awaiting=BankA,BankB (awaited)
      persisted decision
      > aborting TRANSACTION_ABORTED awaiting=BankA,BankB
      > send abort BankA
      > send abort BankB
      # The recovered run goes on; its presumed-abort decision is on disk for the next crash.
      ack BankA abort
      > aborting TRANSACTION_ABORTED awaiting=BankB
      > persist ack BankA
      crash
      > aborting TRANSACTION_ABORTED awaiting=BankB
      > send abort BankB
      ack BankB abort
      > aborted TRANSACTION_ABORTED
      > persist completed aborted TRANSACTION_ABORTED
      crash
      > aborted TRANSACTION_ABORTED
    `);
  });

  it('committing with one ack: Commit only to the bank that has not acknowledged', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      vote credit yes now=1200
      > committing awaiting=BankA,BankB replyAt=3200 replied=false decision-not-durable
      > persist decision commit awaiting=BankA,BankB (awaited)
      persisted decision
      > committing awaiting=BankA,BankB replyAt=3200 replied=false
      > send commit BankA
      > send commit BankB
      crash
      > committing awaiting=BankA,BankB replyAt=0 replied=true
      > send commit BankA
      > send commit BankB
      ack BankB commit
      > committing awaiting=BankA replyAt=0 replied=true
      > persist ack BankB
      crash
      > committing awaiting=BankA replyAt=0 replied=true
      > send commit BankA
    `);
  });

  it('aborting: Abort to the banks still awaited; final: nothing to do', () => {
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankB
      vote debit no INSUFFICIENT_FUNDS now=1100
      > aborting INSUFFICIENT_FUNDS awaiting=BankB decision-not-durable
      > persist decision abort INSUFFICIENT_FUNDS awaiting=BankB (awaited)
      persisted decision
      > aborting INSUFFICIENT_FUNDS awaiting=BankB
      > send abort BankB
      > reply aborted INSUFFICIENT_FUNDS
      crash
      > aborting INSUFFICIENT_FUNDS awaiting=BankB
      > send abort BankB
      ack BankB abort
      > aborted INSUFFICIENT_FUNDS
      > persist completed aborted INSUFFICIENT_FUNDS
      crash
      > aborted INSUFFICIENT_FUNDS
    `);
    check(`
      begin now=1000
      > preparing votes= deadline=6000 begin-not-durable
      > persist begin (awaited)
      persisted begin
      > preparing votes= deadline=6000
      > send prepare debit@BankA
      > send prepare credit@BankA
      vote debit yes now=1100
      > preparing votes=debit:yes deadline=6000
      vote credit yes now=1100
      > committing awaiting=BankA replyAt=3100 replied=false decision-not-durable
      > persist decision commit awaiting=BankA (awaited)
      persisted decision
      > committing awaiting=BankA replyAt=3100 replied=false
      > send commit BankA
      ack BankA commit
      > committed
      > persist completed committed
      > reply committed
      crash
      > committed
    `, sameBank);
  });

  it('recovered phases continue with step, and never reply', () => {
    const rows: DurableTx[] = [{ tx: crossBank, state: 'preparing', awaiting: [] }];
    const { phases } = recover(rows);
    let phase = phases.get(crossBank.id) as Phase;
    expect(phase.kind).to.equal('aborting');
    const effects: Effect[] = [];
    {
      const r = step(phase, { type: 'persisted', record: 'decision' }, limits);
      phase = r.phase;
      effects.push(...r.effects);
    }
    for (const bank of ['BankA', 'BankB']) {
      const r = step(phase, { type: 'ack', bank, rpc: 'abort' }, limits);
      phase = r.phase;
      effects.push(...r.effects);
    }
    expect(phase).to.deep.include({ kind: 'aborted', failure: PRESUMED_ABORT });
    expect(effects.some((e) => e.type === 'reply')).to.equal(false);
  });

  it('rows that contradict the transfer are assertions', () => {
    expect(() => recover([{ tx: crossBank, state: 'committing', awaiting: ['BankZ'] }])).to.throw(AssertionError);
    expect(() => recover([{ tx: crossBank, state: 'aborted', awaiting: [] }])).to.throw(AssertionError);
    expect(() => replayRecords([{ type: 'ack', txId: 'nope', bank: 'BankA' }])).to.throw(AssertionError);
  });
});

import { expect } from 'chai';
import { GroupCommit } from '../../src/core/group-commit.js';
import { ManualClock } from '../helpers/clock.js';

// The one group-commit mechanism (core/group-commit.ts) with an asynchronous writer, as the
// PostgreSQL log uses it, on a manual clock: batching, one write at a time, order, failure
// isolation, background items. (The SQLite log and the bank ledger run it synchronously: see
// group-commit.test.ts.)

/** An asynchronous writer whose writes the test completes by hand. */
class HandWriter {
  readonly writes: { items: readonly string[]; finish: (fail?: boolean) => void }[] = [];
  inFlight = 0;
  maxInFlight = 0;
  readonly durable: string[] = [];
  write = (items: readonly string[]): Promise<readonly string[]> => {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise((resolve, reject) => {
      this.writes.push({
        items,
        finish: (fail = items.includes('bad')) => {
          this.inFlight--;
          if (fail) reject(new Error(`write of ${items.join(',')} failed`));
          else {
            this.durable.push(...items);
            resolve(items.map((i) => `ok:${i}`));
          }
        },
      });
    });
  };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('group commit (core mechanism, asynchronous writer)', () => {
  it('writes what arrives together in one write, one write at a time, in order; what arrives meanwhile is the next batch', async () => {
    const clock = new ManualClock();
    const w = new HandWriter();
    const g = new GroupCommit(w.write, { maxItems: 100, windowMs: 0, backgroundDelayMs: 50 }, clock);
    const heard: string[] = [];
    const done = (name: string) => (err?: Error, r?: string) => heard.push(err ? `err:${name}` : String(r));
    g.submit('a', done('a'));
    g.submit('b', done('b'));
    expect(w.writes).to.have.length(0);
    clock.advance(0);
    expect(w.writes.map((x) => x.items)).to.deep.equal([['a', 'b']]);
    g.submit('c', done('c'));
    g.submit('d', done('d'));
    clock.advance(0);
    // The first write is still out: nothing else is written meanwhile.
    expect(w.writes).to.have.length(1);
    expect(heard).to.deep.equal([]);
    w.writes[0]!.finish();
    await settle();
    expect(heard).to.deep.equal(['ok:a', 'ok:b']);
    expect(w.writes.map((x) => x.items)).to.deep.equal([['a', 'b'], ['c', 'd']]);
    w.writes[1]!.finish();
    await settle();
    expect(heard).to.deep.equal(['ok:a', 'ok:b', 'ok:c', 'ok:d']);
    expect(w.maxInFlight).to.equal(1);
    expect(w.durable).to.deep.equal(['a', 'b', 'c', 'd']);
  });

  it('a failed shared write is retried item by item: only the bad item fails', async () => {
    const clock = new ManualClock();
    const w = new HandWriter();
    const g = new GroupCommit(w.write, { maxItems: 100, windowMs: 0, backgroundDelayMs: 50 }, clock);
    const heard: string[] = [];
    for (const name of ['a', 'bad', 'c']) g.submit(name, (err, r) => heard.push(err ? `err:${name}` : String(r)));
    let flushed = 0;
    g.onFlushed(() => flushed++);
    clock.advance(0);
    w.writes[0]!.finish();
    for (let i = 1; i <= 3; i++) {
      await settle();
      expect(w.writes, `alone write ${i}`).to.have.length(1 + i);
      w.writes[i]!.finish();
    }
    await settle();
    expect(w.writes.map((x) => x.items)).to.deep.equal([['a', 'bad', 'c'], ['a'], ['bad'], ['c']]);
    expect(heard).to.deep.equal(['ok:a', 'err:bad', 'ok:c']);
    expect(w.durable).to.deep.equal(['a', 'c']);
    expect(flushed).to.equal(1);
  });

  it('tells its observer of each shared write: its size when it starts, ok or failed when it ends (not the writes alone)', async () => {
    const clock = new ManualClock();
    const w = new HandWriter();
    const seen: string[] = [];
    const observer = { writeStarted: (items: number) => { seen.push(`start:${items}`); return (ok: boolean) => seen.push(ok ? 'ok' : 'failed'); } };
    const g = new GroupCommit(w.write, { maxItems: 100, windowMs: 0, backgroundDelayMs: 50 }, clock, observer);
    g.submit('a');
    g.submit('b');
    clock.advance(0);
    expect(seen).to.deep.equal(['start:2']);
    w.writes[0]!.finish();
    await settle();
    expect(seen).to.deep.equal(['start:2', 'ok']);
    g.submit('bad');
    clock.advance(0);
    w.writes[1]!.finish();
    await settle();
    w.writes[2]!.finish();
    await settle();
    expect(seen).to.deep.equal(['start:2', 'ok', 'start:1', 'failed']);
  });

  it('a background item waits for an urgent one to ride along, or for backgroundDelayMs', async () => {
    const clock = new ManualClock();
    const w = new HandWriter();
    const g = new GroupCommit(w.write, { maxItems: 100, windowMs: 5, backgroundDelayMs: 50 }, clock);
    g.submit('ack1', undefined, false);
    clock.advance(40);
    expect(w.writes).to.have.length(0);
    g.submit('decision', () => undefined);
    clock.advance(4);
    expect(w.writes).to.have.length(0);
    clock.advance(1); // the urgent item's window is over: the background one rides along
    expect(w.writes.map((x) => x.items)).to.deep.equal([['ack1', 'decision']]);
    w.writes[0]!.finish();
    await settle();
    g.submit('ack2', undefined, false);
    clock.advance(49);
    expect(w.writes).to.have.length(1);
    clock.advance(1);
    expect(w.writes.map((x) => x.items)).to.deep.equal([['ack1', 'decision'], ['ack2']]);
  });

  it('a full queue is written at once; flush() waits for the write in progress and then writes the rest', async () => {
    const clock = new ManualClock();
    const w = new HandWriter();
    const g = new GroupCommit(w.write, { maxItems: 2, windowMs: 10, backgroundDelayMs: 50 }, clock);
    g.submit('a');
    g.submit('b');
    expect(w.writes.map((x) => x.items)).to.deep.equal([['a', 'b']]);
    g.submit('c');
    let flushed = false;
    const flushing = g.flush().then(() => { flushed = true; });
    await settle();
    expect(flushed).to.equal(false);
    w.writes[0]!.finish();
    await settle();
    expect(w.writes.map((x) => x.items)).to.deep.equal([['a', 'b'], ['c']]);
    expect(flushed).to.equal(false);
    w.writes[1]!.finish();
    await flushing;
    expect(w.durable).to.deep.equal(['a', 'b', 'c']);
  });

  it('a background item left queued while a write was out goes out after its delay, not with the next submission only', async () => {
    const clock = new ManualClock();
    const w = new HandWriter();
    const g = new GroupCommit(w.write, { maxItems: 100, windowMs: 0, backgroundDelayMs: 50 }, clock);
    g.submit('decision', () => undefined);
    clock.advance(0);
    g.submit('ack', undefined, false);
    clock.advance(50); // its delay ends while the first write is still out
    expect(w.writes).to.have.length(1);
    w.writes[0]!.finish();
    await settle();
    clock.advance(50);
    expect(w.writes.map((x) => x.items)).to.deep.equal([['decision'], ['ack']]);
  });
});

import { expect } from 'chai';
import { repeat } from '../../src/core/repeat.js';
import { ManualClock } from '../helpers/clock.js';

// The one "every N ms" mechanism (core/repeat.ts) on a manual clock: the interval counts from the
// end of a run, a failure is reported and the runs go on, stop() ends them (even mid-run).

const settle = () => new Promise((r) => setImmediate(r));

/** A run the test finishes by hand. */
function handRuns() {
  const started: number[] = [];
  const open: { resolve: () => void; reject: (err: Error) => void }[] = [];
  const run = (clock: ManualClock) => () => {
    started.push(clock.now);
    return new Promise<void>((resolve, reject) => open.push({ resolve, reject }));
  };
  return { started, open, run };
}

describe('repeat (core mechanism for periodic housekeeping)', () => {
  it('runs after the first delay, then an interval after each run has ended; never two at once', async () => {
    const clock = new ManualClock();
    const h = handRuns();
    repeat(clock, { intervalMs: 100, firstDelayMs: 0, onError: () => expect.fail('no failure') }, h.run(clock));
    clock.advance(0);
    expect(h.started).to.deep.equal([0]);
    // The run is still going: a whole interval later nothing else has started.
    clock.advance(250);
    expect(h.started).to.deep.equal([0]);
    h.open[0]!.resolve();
    await settle();
    clock.advance(99);
    expect(h.started).to.deep.equal([0]);
    clock.advance(1);
    expect(h.started).to.deep.equal([0, 350]);
  });

  it('waits the interval before the first run unless told otherwise', () => {
    const clock = new ManualClock();
    const h = handRuns();
    repeat(clock, { intervalMs: 100, onError: () => undefined }, h.run(clock));
    clock.advance(99);
    expect(h.started).to.deep.equal([]);
    clock.advance(1);
    expect(h.started).to.deep.equal([100]);
  });

  it('reports a rejected or thrown run and goes on', async () => {
    const clock = new ManualClock();
    const errors: string[] = [];
    let n = 0;
    repeat(clock, { intervalMs: 10, onError: (err) => errors.push((err as Error).message) }, () => {
      n++;
      if (n === 1) return Promise.reject(new Error('rejected'));
      if (n === 2) throw new Error('thrown');
      return Promise.resolve();
    });
    for (let i = 0; i < 3; i++) {
      clock.advance(10);
      await settle();
    }
    expect(n).to.equal(3);
    expect(errors).to.deep.equal(['rejected', 'thrown']);
    expect(clock.pending).to.equal(1);
  });

  it('stop() cancels the next run, and a run in flight is not followed by another', async () => {
    const clock = new ManualClock();
    const h = handRuns();
    const idle = repeat(clock, { intervalMs: 10, onError: () => undefined }, h.run(clock));
    idle.stop();
    clock.advance(100);
    expect(h.started).to.deep.equal([]);

    const busy = repeat(clock, { intervalMs: 10, onError: () => undefined }, h.run(clock));
    clock.advance(10);
    expect(h.started).to.deep.equal([110]);
    busy.stop();
    h.open[0]!.resolve();
    await settle();
    clock.advance(100);
    expect(h.started).to.deep.equal([110]);
    expect(clock.pending).to.equal(0);
  });
});

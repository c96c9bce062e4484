import { createHash, type Hash } from 'node:crypto';
import type { Clock, Timer } from '../../src/core/clock.js';

// Simulated time: one event queue for the whole simulated cluster. Every timer of every node and
// every network delivery is an event; the simulator runs them one at a time in (time, sequence)
// order and lets the microtask queue empty between two of them, so that the real code's promise
// chains finish before the next event, as they would before the next I/O callback in Node.
// A node's timers belong to its incarnation (epoch): a crash drops every one of them.

/** Something that can crash: its timers and the deliveries addressed to it die with it. */
export interface Incarnation {
  readonly name: string;
  epoch: number;
  up: boolean;
}

interface SimEvent {
  readonly atMs: number;
  readonly seq: number;
  readonly owner: Incarnation | undefined;
  readonly epoch: number;
  readonly label: string;
  readonly fn: () => void;
  cancelled: boolean;
}

/** Lets every queued microtask (and those they queue) run: setImmediate fires only after that. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

export class SimTime {
  nowMs: number;
  /** Events run so far. */
  steps = 0;
  private seq = 0;
  private readonly heap: SimEvent[] = [];
  private readonly hash: Hash = createHash('sha256');
  /** Trace text not yet hashed: one hash update per chunk, not per line (same digest). */
  private unhashed = '';
  /** The last trace lines, for a failure report. */
  readonly trace: string[] = [];
  private readonly traceMax: number;

  /** Told of an exception thrown by an event (a node's bug or an invariant violation). */
  onError: (err: unknown, where: string) => void = (err) => {
    throw err;
  };

  constructor(startMs: number, traceMax = 4000) {
    this.nowMs = startMs;
    this.traceMax = traceMax;
  }

  /** Adds one line to the trace (and its hash). */
  note(line: string): void {
    const text = `${this.nowMs} ${line}`;
    this.unhashed += `${text}\n`;
    if (this.unhashed.length > 65_536) this.flushHash();
    if (this.trace.length >= this.traceMax) this.trace.splice(0, this.traceMax / 2);
    this.trace.push(text);
  }

  traceHash(): string {
    this.flushHash();
    return this.hash.copy().digest('hex').slice(0, 16);
  }

  private flushHash(): void {
    this.hash.update(this.unhashed);
    this.unhashed = '';
  }

  /** Schedules `fn` `delayMs` from now; with an owner, only in its incarnation `epoch` (default: the current one). */
  at(delayMs: number, owner: Incarnation | undefined, label: string, fn: () => void, epoch = owner?.epoch ?? 0): Timer {
    const ev: SimEvent = {
      atMs: this.nowMs + Math.max(0, Math.floor(delayMs)),
      seq: this.seq++,
      owner,
      epoch,
      label,
      fn,
      cancelled: false,
    };
    this.push(ev);
    return { cancel: () => { ev.cancelled = true; } };
  }

  /** A node's clock: its timers are events owned by its current incarnation. */
  clockOf(owner: Incarnation): Clock {
    const epoch = owner.epoch;
    const dead: Timer = { cancel: () => undefined };
    return {
      nowMs: () => this.nowMs,
      // A dead incarnation's code schedules nothing more.
      setTimer: (ms, fn) => (owner.epoch === epoch ? this.at(ms, owner, owner.name, fn) : dead),
    };
  }

  get pending(): number {
    return this.heap.length;
  }

  /**
   * Runs events until `untilMs` (or `stop()` says so, checked after each event). `afterEach` runs
   * after every event once its microtasks are done (cheap invariants). Returns false when stopped.
   */
  async runUntil(untilMs: number, afterEach: () => void, stop: () => boolean = () => false): Promise<boolean> {
    for (;;) {
      const ev = this.heap[0];
      if (!ev || ev.atMs > untilMs) break;
      this.pop();
      if (ev.cancelled) continue;
      if (ev.owner && (ev.owner.epoch !== ev.epoch || !ev.owner.up)) continue;
      this.nowMs = ev.atMs;
      this.steps++;
      this.note(ev.label);
      try {
        ev.fn();
      } catch (err) {
        this.onError(err, ev.owner?.name ?? 'simulator');
      }
      await settle();
      afterEach();
      if (stop()) return false;
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
    return true;
  }

  private push(ev: SimEvent): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

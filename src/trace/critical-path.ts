import fs from 'node:fs';
import path from 'node:path';
import { createHistogram, monitorEventLoopDelay, performance, type IntervalHistogram, type RecordableHistogram } from 'node:perf_hooks';

// Critical-path tracing of a node (gateway or bank), for the benchmark. Off unless the process
// starts with PAYMENTS_TRACE_CRITICAL_PATH=1: then, and only then, the wiring wraps a few hot
// methods (src/trace/gateway-trace.ts, bank-trace.ts) so that each committed transfer's phases
// land in in-memory histograms, and the node watches its own event loop. When it is off nothing
// is wrapped, so the hot path carries no check at all.
//
// Transport: on SIGUSR2 the node writes what it recorded since the previous SIGUSR2 (or its start)
// to <dataDir>/critical-path.json (written aside, then renamed: a reader never sees half a file)
// and starts a new interval. bin/bench signals at the start of its measured window (discarding
// that dump) and at the end (reading it).

export const TRACE_ENV = 'PAYMENTS_TRACE_CRITICAL_PATH';
export const TRACE_FILE = 'critical-path.json';
export const TRACE_SIGNAL = 'SIGUSR2';
/** Sampling interval of the event-loop delay monitor (a native timer), ms. */
export const EVENT_LOOP_DELAY_RESOLUTION_MS = 2;
/** Durations are kept in microseconds (HDR histogram, 3 significant digits) up to this bound. */
const PHASE_MAX_US = 600_000_000;

export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[TRACE_ENV] === '1';
}

export interface PhaseStats {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface EventLoopStats {
  /** Share of the interval the event loop was busy (performance.eventLoopUtilization), 0..1. */
  readonly utilization: number;
  /**
   * How late the monitor's timer fired (perf_hooks.monitorEventLoopDelay), ms: Node records the
   * time between its callbacks, so the sampling interval is subtracted here (0 = on time).
   */
  readonly delayMs: { readonly mean: number; readonly p50: number; readonly p99: number; readonly max: number };
}

/** One node's dump: everything recorded over one interval. */
export interface TraceDump {
  readonly node: string;
  /** Increases with every dump of this process. */
  readonly seq: number;
  readonly pid: number;
  readonly intervalMs: number;
  readonly eventLoop: EventLoopStats;
  readonly phases: Readonly<Record<string, PhaseStats>>;
  readonly counters: Readonly<Record<string, number>>;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

function statsOf(h: RecordableHistogram): PhaseStats {
  const ms = (us: number) => round3(us / 1000);
  return { count: h.count, meanMs: ms(h.mean), p50Ms: ms(h.percentile(50)), p90Ms: ms(h.percentile(90)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.max) };
}

/** Phase histograms, counters and event-loop figures of one node over the current interval. */
export class CriticalPathRecorder {
  private phases = new Map<string, RecordableHistogram>();
  private counters: Record<string, number> = {};
  private elu = performance.eventLoopUtilization();
  private readonly delay: IntervalHistogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_DELAY_RESOLUTION_MS });
  private since = performance.now();
  private seq = 0;

  constructor(readonly node: string) {
    this.delay.enable();
  }

  /** Adds one sample (ms) to `phase`. */
  record(phase: string, ms: number): void {
    let h = this.phases.get(phase);
    if (!h) {
      h = createHistogram({ lowest: 1, highest: PHASE_MAX_US, figures: 3 });
      this.phases.set(phase, h);
    }
    h.record(Math.min(PHASE_MAX_US, Math.max(1, Math.round(ms * 1000))));
  }

  count(name: string, n = 1): void {
    this.counters[name] = (this.counters[name] ?? 0) + n;
  }

  /** What was recorded since the previous snapshot; starts a new interval. */
  snapshot(): TraceDump {
    const now = performance.now();
    const elu = performance.eventLoopUtilization(this.elu);
    const d = this.delay;
    const ms = (ns: number) => round3(Math.max(0, ns / 1e6 - EVENT_LOOP_DELAY_RESOLUTION_MS));
    const dump: TraceDump = {
      node: this.node,
      seq: ++this.seq,
      pid: process.pid,
      intervalMs: round3(now - this.since),
      eventLoop: {
        utilization: round3(elu.utilization),
        delayMs: d.count > 0
          ? { mean: ms(d.mean), p50: ms(d.percentile(50)), p99: ms(d.percentile(99)), max: ms(d.max) }
          : { mean: 0, p50: 0, p99: 0, max: 0 },
      },
      phases: Object.fromEntries([...this.phases].map(([k, h]) => [k, statsOf(h)])),
      counters: this.counters,
    };
    this.phases = new Map();
    this.counters = {};
    this.elu = performance.eventLoopUtilization();
    this.delay.reset();
    this.since = now;
    return dump;
  }

  close(): void {
    this.delay.disable();
  }
}

/** A node's tracing: the recorder plus the SIGUSR2 dump into `dir`. */
export interface NodeTrace {
  readonly recorder: CriticalPathRecorder;
  /** Removes the signal handler and stops the monitor. */
  close(): void;
}

/** Starts tracing `node` when PAYMENTS_TRACE_CRITICAL_PATH=1; undefined (and nothing done) otherwise. */
export function startNodeTrace(node: string, dir: string, env: NodeJS.ProcessEnv = process.env): NodeTrace | undefined {
  if (!tracingEnabled(env)) return undefined;
  const recorder = new CriticalPathRecorder(node);
  const file = path.join(dir, TRACE_FILE);
  const onSignal = () => {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(recorder.snapshot())}\n`);
    fs.renameSync(tmp, file);
  };
  process.on(TRACE_SIGNAL, onSignal);
  return {
    recorder,
    close() {
      process.off(TRACE_SIGNAL, onSignal);
      recorder.close();
    },
  };
}

/** Reads a dump written by startNodeTrace; undefined when there is none (yet). */
export function readTraceDump(dir: string): TraceDump | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, TRACE_FILE), 'utf8');
  } catch {
    return undefined;
  }
  return JSON.parse(text) as TraceDump;
}

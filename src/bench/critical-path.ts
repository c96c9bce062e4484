import { readTraceDump, TRACE_SIGNAL, type PhaseStats, type TraceDump } from '../trace/critical-path.js';

// The benchmark's side of critical-path tracing (src/trace/critical-path.ts): signal each traced
// node and read the dump it writes into its data folder; then the pure summaries the report
// shows (mean ms per phase of a committed transfer, event-loop figures per node).

/** How long a node may take to write its dump after the signal. */
export const TRACE_DUMP_TIMEOUT_MS = 5000;
export const TRACE_DUMP_POLL_MS = 10;

export interface TraceTarget {
  readonly name: string;
  readonly pid: number;
  readonly dataDir: string;
}

/** What the traced nodes recorded over one measured window (undefined entries: no dump came). */
export interface CriticalPath {
  /** One dump per gateway instance (several over PostgreSQL; their histograms are merged by count). */
  readonly gateways: readonly TraceDump[];
  readonly banks: readonly TraceDump[];
  /** Event-loop utilization of each load-generator process over the window, 0..1. */
  readonly loadgenUtilization: readonly number[];
}

/**
 * Asks every target for the dump of what it recorded since the previous signal (which also starts
 * its next interval). A node that does not answer in time is left out.
 */
export async function collectDumps(targets: readonly TraceTarget[]): Promise<Map<string, TraceDump>> {
  const out = new Map<string, TraceDump>();
  await Promise.all(targets.map(async (t) => {
    const previous = readTraceDump(t.dataDir);
    try {
      process.kill(t.pid, TRACE_SIGNAL);
    } catch {
      return;
    }
    const deadline = Date.now() + TRACE_DUMP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const d = readTraceDump(t.dataDir);
      if (d && d.pid === t.pid && (previous === undefined || previous.pid !== t.pid || d.seq !== previous.seq)) {
        out.set(t.name, d);
        return;
      }
      await new Promise((r) => setTimeout(r, TRACE_DUMP_POLL_MS));
    }
  }));
  return out;
}

/** Count-weighted mean over several nodes' histograms of one phase; NaN when none has it. */
export function meanOf(dumps: readonly (TraceDump | undefined)[], phase: string): number {
  let n = 0;
  let sum = 0;
  for (const d of dumps) {
    const s: PhaseStats | undefined = d?.phases[phase];
    if (!s || s.count === 0) continue;
    n += s.count;
    sum += s.meanMs * s.count;
  }
  return n === 0 ? NaN : sum / n;
}

/** Columns of the critical-path table: header, then how to read each from a point. */
export const CRITICAL_PATH_COLUMNS: readonly { readonly head: string; readonly of: (cp: CriticalPath, clientMeanMs: number) => number }[] = [
  { head: 'client mean', of: (_, client) => client },
  { head: 'outside gateway', of: (cp, client) => client - meanOf(cp.gateways, 'total') },
  { head: 'accept', of: (cp) => meanOf(cp.gateways, 'accept') },
  { head: 'begin flush', of: (cp) => meanOf(cp.gateways, 'begin_flush') },
  { head: 'prepare dispatch', of: (cp) => meanOf(cp.gateways, 'prepare_dispatch') },
  { head: 'prepare RTT', of: (cp) => meanOf(cp.gateways, 'prepare_rtt') },
  { head: '(bank queue', of: (cp) => meanOf(cp.banks, 'prepare.queue') },
  { head: 'bank flush', of: (cp) => meanOf(cp.banks, 'prepare.flush') },
  { head: 'bank total)', of: (cp) => meanOf(cp.banks, 'prepare.total') },
  { head: 'decide', of: (cp) => meanOf(cp.gateways, 'decide') },
  { head: 'decision flush', of: (cp) => meanOf(cp.gateways, 'decision_flush') },
  { head: 'commit dispatch', of: (cp) => meanOf(cp.gateways, 'commit_dispatch') },
  { head: 'commit RTT', of: (cp) => meanOf(cp.gateways, 'commit_rtt') },
  { head: '(bank queue', of: (cp) => meanOf(cp.banks, 'commit.queue') },
  { head: 'bank flush', of: (cp) => meanOf(cp.banks, 'commit.flush') },
  { head: 'bank total)', of: (cp) => meanOf(cp.banks, 'commit.total') },
  { head: 'reply', of: (cp) => meanOf(cp.gateways, 'reply') },
  { head: 'gateway total', of: (cp) => meanOf(cp.gateways, 'total') },
];

/** Per node of one point: name, event-loop utilization %, loop delay p50 / p99 / max ms. */
export function eventLoopRows(cp: CriticalPath): { node: string; elu: number; p50: number; p99: number; max: number }[] {
  const rows = [...cp.gateways, ...cp.banks].map((d) => ({
    node: d.node,
    elu: d.eventLoop.utilization * 100,
    p50: d.eventLoop.delayMs.p50,
    p99: d.eventLoop.delayMs.p99,
    max: d.eventLoop.delayMs.max,
  }));
  cp.loadgenUtilization.forEach((u, i) => rows.push({ node: `loadgen${cp.loadgenUtilization.length > 1 ? i : ''}`, elu: u * 100, p50: NaN, p99: NaN, max: NaN }));
  return rows;
}

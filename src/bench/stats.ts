// Pure statistics of a benchmark run: latency percentiles over a sorted array (exact, not
// approximated), outcome counters by reason, and merging of per-worker results.

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Nearest-rank percentile of an ascending array: the smallest value with at least p% at or below it. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile ${p} is not in 0..100`);
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * n));
  return sorted[Math.min(n, rank) - 1]!;
}

export function summarizeLatencies(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  return {
    count: sorted.length,
    meanMs: sorted.length ? sum / sorted.length : NaN,
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
  };
}

/** Reasons with which the gateway reports that the 2PC run decided ABORT (the money did not move). */
export const ABORT_REASONS: ReadonlySet<string> = new Set([
  'INSUFFICIENT_FUNDS',
  'ACCOUNT_NOT_FOUND',
  'CURRENCY_MISMATCH',
  'TRANSACTION_ABORTED',
  'TRANSACTION_CONFLICT',
  'PREPARE_TIMEOUT',
  'BANK_UNAVAILABLE',
]);

export type OutcomeKind = 'committed' | 'aborted' | 'failed';

/**
 * Classifies a CreateTransfer answer: no error = committed; an error carrying one of
 * ABORT_REASONS = aborted by the protocol; anything else (overload, shutdown, deadline, transport,
 * a reason without a status) = failed. `reason` is the ErrorInfo reason or, without one, the gRPC
 * status name (e.g. "DEADLINE_EXCEEDED").
 */
export function classify(reason: string | undefined): OutcomeKind {
  if (reason === undefined) return 'committed';
  return ABORT_REASONS.has(reason) ? 'aborted' : 'failed';
}

export type Counts = Record<string, number>;

export function addCount(counts: Counts, key: string, n = 1): void {
  counts[key] = (counts[key] ?? 0) + n;
}

export function mergeCounts(...all: readonly Counts[]): Counts {
  const out: Counts = {};
  for (const c of all) for (const [k, n] of Object.entries(c)) addCount(out, k, n);
  return out;
}

export function totalOf(counts: Counts): number {
  let n = 0;
  for (const v of Object.values(counts)) n += v;
  return n;
}

/** What one load-generator worker measured inside the measurement window. */
export interface WindowResult {
  readonly committed: number;
  readonly aborted: Counts;
  readonly failed: Counts;
  /** Latency of every committed transfer that started and ended inside the window, ms. */
  readonly latenciesMs: number[];
}

export function mergeWindows(parts: readonly WindowResult[]): WindowResult {
  const latenciesMs: number[] = [];
  for (const p of parts) for (const l of p.latenciesMs) latenciesMs.push(l);
  return {
    committed: parts.reduce((n, p) => n + p.committed, 0),
    aborted: mergeCounts(...parts.map((p) => p.aborted)),
    failed: mergeCounts(...parts.map((p) => p.failed)),
    latenciesMs,
  };
}

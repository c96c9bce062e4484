import fs from 'node:fs';
import path from 'node:path';
import { CRITICAL_PATH_COLUMNS, eventLoopRows } from './critical-path.js';
import type { MachineInfo } from './proc.js';
import type { BenchReport, PointResult } from './run.js';
import type { Counts } from './stats.js';

// Human-readable output of a benchmark: a table per run, and the markdown section that
// `--docs FILE --label NAME` writes into docs/benchmarks.md (replacing that label's old section).

function ms(x: number): string {
  if (!Number.isFinite(x)) return '-';
  return x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0);
}

function counts(c: Counts): string {
  const parts = Object.entries(c).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(', ') : '-';
}

function cpuCell(p: PointResult): string {
  return p.cpu.map((c) => `${c.name} ${c.seconds.toFixed(1)}`).join(' / ');
}

/** How full the whole machine was: below 100% with throughput flat, something other than CPU waits. */
function machineCell(p: PointResult): string {
  if (!Number.isFinite(p.machineBusyPct)) return '-';
  const steal = p.machineStealPct >= 0.5 ? ` (steal ${p.machineStealPct.toFixed(0)})` : '';
  return `${p.machineBusyPct.toFixed(0)}${steal}`;
}

/** Rows of the results table, header first. */
export function tableRows(points: readonly PointResult[]): string[][] {
  const rows = [['C', 'committed/s', 'committed', 'aborted', 'failed', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'CPU ms/transfer',
    'CPU s (measured window)', 'machine busy %', 'load avg', 'money']];
  for (const p of points) {
    rows.push([
      String(p.concurrency),
      p.committedPerS.toFixed(0),
      String(p.committed),
      p.abortedTotal ? `${p.abortedTotal} (${counts(p.aborted)})` : '0',
      p.failedTotal ? `${p.failedTotal} (${counts(p.failed)})` : '0',
      ms(p.latency.p50Ms),
      ms(p.latency.p95Ms),
      ms(p.latency.p99Ms),
      ms(p.latency.maxMs),
      ms(p.cpuMsPerTransfer),
      cpuCell(p),
      machineCell(p),
      p.loadAvg1.toFixed(1),
      p.conservation.conserved ? 'conserved' : `NOT conserved (start ${p.conservation.startMinor}, end ${p.conservation.endMinor}, held ${p.conservation.heldMinor})`,
    ]);
  }
  return rows;
}

/**
 * Rows of the critical-path table (mean ms per committed transfer, gateway and bank clocks), header
 * first; undefined when no point was traced. The phases between "client mean" and "gateway total"
 * add up to the gateway total; the bracketed bank columns are inside the RTT before them.
 */
export function criticalPathRows(points: readonly PointResult[]): string[][] | undefined {
  const traced = points.filter((p) => p.criticalPath && p.criticalPath.gateways.length > 0);
  if (traced.length === 0) return undefined;
  const rows = [['C', ...CRITICAL_PATH_COLUMNS.map((c) => c.head)]];
  for (const p of traced) rows.push([String(p.concurrency), ...CRITICAL_PATH_COLUMNS.map((c) => ms(c.of(p.criticalPath!, p.latency.meanMs)))]);
  return rows;
}

/** Rows of the event-loop table: per point and node, utilization and loop delay. */
export function eventLoopTableRows(points: readonly PointResult[]): string[][] | undefined {
  const traced = points.filter((p) => p.criticalPath);
  if (traced.length === 0) return undefined;
  const rows = [['C', 'node', 'event loop busy %', 'loop delay p50 ms', 'p99 ms', 'max ms']];
  for (const p of traced) {
    for (const r of eventLoopRows(p.criticalPath!)) rows.push([String(p.concurrency), r.node, r.elu.toFixed(0), ms(r.p50), ms(r.p99), ms(r.max)]);
  }
  return rows;
}

/** Columns 1..rightUntil are numbers (right-aligned), except those listed in `left`. */
export function formatTable(rows: readonly (readonly string[])[], rightUntil = 9, left: readonly number[] = []): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const isLeft = (i: number) => i === 0 || i > rightUntil || left.includes(i);
  return rows.map((r) => r.map((cell, i) => (isLeft(i) ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

export function markdownTable(rows: readonly (readonly string[])[], rightUntil = 9, left: readonly number[] = []): string {
  const [head, ...body] = rows;
  return [
    `| ${head!.join(' | ')} |`,
    `|${head!.map((_, i) => (i >= 1 && i <= rightUntil && !left.includes(i) ? '---:' : '---')).join('|')}|`,
    ...body.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** The critical-path and event-loop tables (nothing when the run was not traced). */
function traceTables(points: readonly PointResult[], table: typeof formatTable, heading: (t: string) => string): string[] {
  const cp = criticalPathRows(points);
  const el = eventLoopTableRows(points);
  if (!cp || !el) return [];
  return [
    '',
    heading('Where a committed transfer\'s time went (mean ms; phases from "accept" to "reply" add up to "gateway total"; bracketed bank figures are inside the RTT before them):'),
    '',
    table(cp, cp[0]!.length - 1),
    '',
    heading('Event loops over the measured window:'),
    '',
    table(el, 5, [1]),
  ];
}

export function describeMachine(m: MachineInfo): string {
  return `${m.nproc} cores (nproc), ${m.cpuModel}, ${m.memTotal} RAM, Node ${m.node}, ${m.os}`;
}

export function describeSetup(r: BenchReport): string {
  const s = r.setup;
  const system = s.launched ? 'launched by bin/bench' : 'targeted (--config)';
  return `${s.banks.length} banks (${s.banks.join(', ')}), ${s.accountsPerBank} accounts per bank, ${s.historyRows} history rows added, `
    + `same-bank share ${s.sameBankShare}, amounts ${s.amount}, seed ${s.seed}, ${s.workers} load worker(s) x ${s.channelsPerWorker} channel(s); `
    + `system ${system}, ${s.discovery} discovery${s.trace ? ', critical-path tracing on' : ''}${s.discovery === 'consul' ? ' (Consul agent on the machine)' : ''}${s.sets.length ? `, --set ${s.sets.join(' ')}` : ''}`;
}

/** The human-readable report printed by bin/bench. */
export function formatReport(r: BenchReport): string {
  const p0 = r.points[0];
  return [
    `machine: ${describeMachine(r.machine)}`,
    `setup:   ${describeSetup(r)}`,
    p0 ? `window:  ${p0.warmupS} s warm-up, then ${p0.durationS} s measured per C` : '',
    '',
    formatTable(tableRows(r.points)),
    ...r.points.flatMap(failoverLines),
    ...traceTables(r.points, formatTable, (t) => t),
  ].join('\n');
}

/** With --kill-gateway-after: the kill, the takeover, and committed/s second by second (the dip). */
export function failoverLines(p: PointResult): string[] {
  if (!p.failover) return [];
  const f = p.failover;
  return [
    '',
    `failover: ${f.victim} SIGKILLed ${f.killedAtS.toFixed(1)} s after the load started; ${f.unfinishedAtKill} transfers unfinished then; `
      + `all of them finished ${f.finishedAfterMs} ms after the kill`,
    `committed per second: ${p.timeline.join(' ')}`,
  ];
}

function markers(label: string): { start: string; end: string } {
  return { start: `<!-- bench:${label}:start -->`, end: `<!-- bench:${label}:end -->` };
}

/** The markdown section of one labelled run (with its own markers). */
export function markdownSection(r: BenchReport, label: string, command: string): string {
  const { start, end } = markers(label);
  const p0 = r.points[0];
  return [
    start,
    `#### ${label}`,
    '',
    `- Command: \`${command}\``,
    `- Date: ${r.startedAt}`,
    `- Machine: ${describeMachine(r.machine)}`,
    `- Setup: ${describeSetup(r)}`,
    p0 ? `- Window: ${p0.warmupS} s warm-up, then ${p0.durationS} s measured per C` : '',
    '',
    markdownTable(tableRows(r.points)),
    ...r.points.flatMap(failoverLines),
    ...traceTables(r.points, markdownTable, (t) => `- ${t}`),
    end,
  ].join('\n');
}

/** Replaces the section of `label` in `file` (or appends it); creates the file if needed. */
export function writeDocsSection(file: string, label: string, section: string): void {
  const { start, end } = markers(label);
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const i = old.indexOf(start);
  const j = old.indexOf(end);
  const next = i >= 0 && j > i
    ? `${old.slice(0, i)}${section}${old.slice(j + end.length)}`
    : `${old.trimEnd()}\n\n${section}\n`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, next);
}

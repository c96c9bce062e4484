import path from 'node:path';

// Aggregates a V8 .cpuprofile (written by `node --cpu-prof`) by self time: per function
// (name + file:line) and per module (a package in node_modules, a project file, node: internals).
// Self time of a node = its hit count x the sampling interval, estimated from the sample spacing.

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly hitCount?: number;
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface SelfTime {
  readonly key: string;
  readonly ms: number;
  readonly pct: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Share of samples in which the process was idle (waiting on I/O). */
  readonly idlePct: number;
  readonly functions: readonly SelfTime[];
  readonly modules: readonly SelfTime[];
}

const PSEUDO = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

/** The module a script URL belongs to: an npm package, a project path, or node's own code. */
export function moduleOf(url: string): string {
  if (!url) return '(native)';
  if (url.startsWith('node:')) return url.split('/')[0]!;
  const file = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  const nm = file.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = file.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const src = file.search(/\/(src|bin|test)\//);
  return src >= 0 ? file.slice(src + 1) : path.basename(file);
}

function functionKey(f: CallFrame): string {
  if (PSEUDO.has(f.functionName)) return f.functionName;
  const name = f.functionName || '(anonymous)';
  const mod = moduleOf(f.url);
  return `${name} ${mod}${f.url ? `:${f.lineNumber + 1}` : ''}`;
}

function top(map: Map<string, number>, totalMs: number, n: number): SelfTime[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([key, ms]) => ({ key, ms, pct: totalMs > 0 ? (ms / totalMs) * 100 : 0 }));
}

/** Self time by function and by module; `topN` entries of each, largest first. */
export function summarizeProfile(p: CpuProfile, topN: number): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  if (p.samples && p.timeDeltas && p.samples.length === p.timeDeltas.length) {
    // Each sample's time is the gap to the next sample (microseconds).
    for (let i = 0; i < p.samples.length; i++) {
      const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
      selfMs.set(p.samples[i]!, (selfMs.get(p.samples[i]!) ?? 0) + Math.max(0, dt));
    }
  } else {
    const hits = p.nodes.reduce((n, x) => n + (x.hitCount ?? 0), 0);
    const per = hits > 0 ? (p.endTime - p.startTime) / 1000 / hits : 0;
    for (const n of p.nodes) selfMs.set(n.id, (n.hitCount ?? 0) * per);
  }
  let totalMs = 0;
  let idleMs = 0;
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  for (const [id, t] of selfMs) {
    const node = byId.get(id);
    if (!node) continue;
    totalMs += t;
    if (node.callFrame.functionName === '(idle)') {
      idleMs += t;
      continue;
    }
    const fk = functionKey(node.callFrame);
    functions.set(fk, (functions.get(fk) ?? 0) + t);
    const mk = PSEUDO.has(node.callFrame.functionName) ? node.callFrame.functionName : moduleOf(node.callFrame.url);
    modules.set(mk, (modules.get(mk) ?? 0) + t);
  }
  const busyMs = totalMs - idleMs;
  return {
    totalMs,
    idlePct: totalMs > 0 ? (idleMs / totalMs) * 100 : 0,
    // Percentages of busy (non-idle) time: where the CPU went.
    functions: top(functions, busyMs, topN),
    modules: top(modules, busyMs, topN),
  };
}

export function formatProfileSummary(name: string, s: ProfileSummary): string {
  const lines = [`${name}: ${(s.totalMs / 1000).toFixed(1)} s profiled, ${s.idlePct.toFixed(0)}% idle; self time as % of busy time`];
  lines.push('  by module:');
  for (const m of s.modules) lines.push(`    ${m.pct.toFixed(1).padStart(5)}%  ${(m.ms / 1000).toFixed(2).padStart(7)} s  ${m.key}`);
  lines.push('  by function:');
  for (const f of s.functions) lines.push(`    ${f.pct.toFixed(1).padStart(5)}%  ${(f.ms / 1000).toFixed(2).padStart(7)} s  ${f.key}`);
  return lines.join('\n');
}

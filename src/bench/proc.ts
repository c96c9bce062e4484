import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

// Linux process facts for the report: CPU seconds of a process from /proc/<pid>/stat, and a
// description of the machine (nproc, memory, CPU model, Node version).

let ticksPerSecond: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat times (CLK_TCK; 100 on Linux unless told otherwise). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** user + system CPU seconds a process has used so far (all its threads); undefined if it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return parseStatCpuSeconds(text, clockTicksPerSecond());
}

/**
 * CPU seconds of a process and its direct children (PostgreSQL: the postmaster and one backend per
 * connection); children that already exited are not counted.
 */
export function cpuSecondsOfTree(pid: number): number | undefined {
  const own = cpuSecondsOf(pid);
  if (own === undefined) return undefined;
  let total = own;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Field 4 (ppid) is rest[1] after the parenthesised command name.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) total += parseStatCpuSeconds(stat, clockTicksPerSecond());
  }
  return total;
}

/** utime (field 14) + stime (field 15) of a /proc/<pid>/stat line, in seconds. */
export function parseStatCpuSeconds(stat: string, ticks: number): number {
  // The command name (field 2) is in parentheses and may contain spaces: count fields after ")".
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot read CPU times from "${stat.slice(0, 80)}"`);
  return (utime + stime) / ticks;
}

/** The machine's CPU time so far, in clock ticks over all cores (/proc/stat, first line). */
export interface MachineTicks {
  /** Running anything: user, nice, system, irq, softirq. */
  readonly busy: number;
  /** Taken by the hypervisor for other guests while this one wanted to run. */
  readonly steal: number;
  /** busy + idle + iowait + steal. */
  readonly total: number;
}

/** The first ("cpu") line of /proc/stat: user nice system idle iowait irq softirq steal ... */
export function parseProcStat(text: string): MachineTicks {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  const f = line?.trim().split(/\s+/).slice(1, 9).map(Number) ?? [];
  if (f.length < 8 || f.some((n) => !Number.isFinite(n))) throw new Error(`cannot read CPU times from /proc/stat: "${line ?? ''}"`);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  const busy = user + nice + system + irq + softirq;
  return { busy, steal, total: busy + idle + iowait + steal };
}

/** The machine's CPU time so far; undefined where there is no /proc/stat. */
export function machineTicks(): MachineTicks | undefined {
  try {
    return parseProcStat(fs.readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/** Share of the machine (all cores) busy between two readings, and stolen by the hypervisor, in %. */
export function machineUse(from: MachineTicks | undefined, to: MachineTicks | undefined): { busyPct: number; stealPct: number } {
  const total = from && to ? to.total - from.total : 0;
  if (!from || !to || total <= 0) return { busyPct: NaN, stealPct: NaN };
  return { busyPct: ((to.busy - from.busy) / total) * 100, stealPct: ((to.steal - from.steal) / total) * 100 };
}

export interface MachineInfo {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memTotal: string;
  readonly node: string;
  readonly os: string;
}

export function machineInfo(): MachineInfo {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    // os.cpus() already gave a name.
  }
  let nproc = os.availableParallelism();
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    // availableParallelism is the same figure on Linux.
  }
  let memTotal = `${(os.totalmem() / 2 ** 30).toFixed(1)}Gi`;
  try {
    const line = execFileSync('free', ['-h'], { encoding: 'utf8' }).split('\n').find((l) => l.startsWith('Mem:'));
    if (line) memTotal = line.split(/\s+/)[1] ?? memTotal;
  } catch {
    // os.totalmem() is enough.
  }
  return { nproc, cpuModel, memTotal, node: process.version, os: `${os.type()} ${os.release()}` };
}

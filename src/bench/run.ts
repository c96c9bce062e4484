import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectDumps, type CriticalPath } from './critical-path.js';
import type { LiveCounts, WorkerPlan } from './load.js';
import { formatAmountDist, type BenchOptions } from './options.js';
import { loadConfig } from '../config/load.js';
import { openTransferLogReader } from '../gateway/store/open.js';
import { cpuSecondsOf, cpuSecondsOfTree, machineInfo, machineTicks, machineUse, type MachineInfo, type MachineTicks } from './proc.js';
import { mergeWindows, summarizeLatencies, totalOf, type Counts, type LatencySummary, type WindowResult } from './stats.js';
import { launchSystem, targetSystem, type BenchSystem, type MoneyTotals, type NodeRef } from './system.js';
import type { FromWorker, ToWorker } from './worker.js';

// One benchmark: bring up (or target) the system, then for each C: fork the load workers, log the
// sessions in, warm up, measure, read CPU times around the measured window, and check that money
// was conserved once every transfer has settled.

// worker.ts next to this file, or worker.js in the compiled build; fork passes our execArgv (the
// tsx loader, when running from source) on to it.
const WORKER_FILE = fileURLToPath(new URL(`./worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));

/** Bound of the logins of one point (argon2id at the banks: ~0.1 s of a core each). */
export const LOGIN_TIMEOUT_MS = 10 * 60_000;
/** How long the end-of-run conservation check waits for holds to settle. */
export const SETTLE_TIMEOUT_MS = 30_000;
export const SETTLE_POLL_MS = 500;
/** A worker must deliver its result this long after the window ended (the call deadline is added). */
export const RESULT_GRACE_MS = 15_000;

export interface CpuUse {
  readonly name: string;
  /** user + system CPU seconds used during the measured window. */
  readonly seconds: number;
  /** The same as a share of one core: seconds / duration * 100. */
  readonly corePct: number;
}

export interface Conservation {
  readonly startMinor: string;
  readonly endMinor: string;
  readonly heldMinor: string;
  readonly conserved: boolean;
  readonly settleMs: number;
}

export interface PointResult {
  readonly concurrency: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly committed: number;
  readonly committedPerS: number;
  readonly abortedTotal: number;
  readonly failedTotal: number;
  readonly aborted: Counts;
  readonly failed: Counts;
  readonly latency: LatencySummary;
  readonly cpu: readonly CpuUse[];
  /** CPU of every reported process (load generator included) per committed transfer, ms. */
  readonly cpuMsPerTransfer: number;
  /** 1-minute load average when the measured window began: other work on the machine shows here. */
  readonly loadAvg1: number;
  /** Share of all cores busy over the measured window (any process), % (NaN without /proc/stat). */
  readonly machineBusyPct: number;
  /** Share of the window the hypervisor gave to other guests while this machine wanted to run, %. */
  readonly machineStealPct: number;
  readonly conservation: Conservation;
  /** Committed transfers in each second since the load started (warm-up included). */
  readonly timeline: readonly number[];
  /** With --kill-gateway-after: when the victim died and when another instance had finished its transfers. */
  readonly failover?: Failover;
  /** Where the committed transfers' time went (--trace on), per node. */
  readonly criticalPath?: CriticalPath;
}

export interface Failover {
  readonly victim: string;
  /** Seconds since the load started. */
  readonly killedAtS: number;
  /** Unfinished transfers in the shared log right after the kill (in-flight at the victim and elsewhere). */
  readonly unfinishedAtKill: number;
  /** From the kill until no transfer begun before it was unfinished any more. */
  readonly finishedAfterMs: number;
}

export interface BenchReport {
  readonly startedAt: string;
  readonly machine: MachineInfo;
  readonly setup: {
    readonly launched: boolean;
    /** 'consul' (the default of a launched system: a Consul agent runs beside the nodes) or 'static'. */
    readonly discovery: 'consul' | 'static';
    /** The launched gateways' log (absent for a targeted system, whose store bin/bench does not know; absent in reports before issue 12). */
    readonly store?: 'sqlite' | 'postgres';
    /** Gateway instances the sessions were spread over (absent in reports before issue 12). */
    readonly gateways?: number;
    readonly banks: readonly string[];
    readonly accountsPerBank: number;
    readonly historyRows: number;
    readonly sameBankShare: number;
    readonly amount: string;
    readonly seed: number;
    readonly workers: number;
    readonly channelsPerWorker: number;
    readonly trace: boolean;
    readonly sets: readonly string[];
  };
  readonly points: readonly PointResult[];
}

type Log = (line: string) => void;

interface Worker {
  readonly child: ChildProcess;
  live: LiveCounts;
  result?: WindowResult;
  eventLoopUtilization?: number;
}

function onceFrom(w: Worker, type: FromWorker['type'], timeoutMs: number): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`load worker ${w.child.pid}: no "${type}" within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: FromWorker) => {
      if (m.type === 'error') done(new Error(`load worker ${w.child.pid}: ${m.message}`));
      else if (m.type === type) done(undefined, m);
    };
    const onExit = (code: number | null) => done(new Error(`load worker ${w.child.pid} exited (${code}) before "${type}"`));
    const done = (err?: Error, m?: FromWorker) => {
      clearTimeout(timer);
      w.child.off('message', onMessage);
      w.child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m!);
    };
    w.child.on('message', onMessage);
    w.child.on('exit', onExit);
  });
}

/** CPU seconds so far of every process we account for (by name), and of the whole machine. */
interface CpuSnapshot {
  readonly byName: Map<string, number>;
  readonly machine: MachineTicks | undefined;
}

function cpuSnapshot(refs: readonly NodeRef[]): CpuSnapshot {
  const byName = new Map<string, number>();
  for (const r of refs) {
    const s = r.tree ? cpuSecondsOfTree(r.pid) : cpuSecondsOf(r.pid);
    if (s !== undefined) byName.set(r.name, s);
  }
  const self = process.cpuUsage();
  byName.set('bench', (self.user + self.system) / 1e6);
  return { byName, machine: machineTicks() };
}

async function settle(system: BenchSystem, start: MoneyTotals): Promise<Conservation> {
  const began = Date.now();
  let t = await system.totals();
  while ((t.heldMinor !== 0n || t.balanceMinor !== start.balanceMinor) && Date.now() - began < SETTLE_TIMEOUT_MS) {
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
    t = await system.totals();
  }
  return {
    startMinor: start.balanceMinor.toString(),
    endMinor: t.balanceMinor.toString(),
    heldMinor: t.heldMinor.toString(),
    conserved: t.balanceMinor === start.balanceMinor && t.heldMinor === 0n && t.accounts === start.accounts,
    settleMs: Date.now() - began,
  };
}

/** How often the failover measurement reads the shared log after the kill, and for how long at most. */
const FAILOVER_POLL_MS = 50;
const FAILOVER_WAIT_MAX_MS = 120_000;

/**
 * SIGKILLs the first gateway instance at `atMs`, then reads the shared log until no transfer begun
 * before the kill is unfinished: the victim's in-flight transfers taken over and finished.
 */
async function killLater(system: BenchSystem, atMs: number, goAt: number, log: Log): Promise<Failover> {
  const victim = system.nodes.find((n) => n.name === 'gateway-g1');
  if (!victim) throw new Error('--kill-gateway-after: no gateway-g1 among the launched nodes');
  await new Promise((r) => setTimeout(r, Math.max(0, atMs - Date.now())));
  const reader = await openTransferLogReader(loadConfig({ path: system.configPath }).gateway);
  try {
    process.kill(victim.pid, 'SIGKILL');
    const killedAtMs = Date.now();
    log(`failover: SIGKILL ${victim.name} (pid ${victim.pid}) ${((killedAtMs - goAt) / 1000).toFixed(1)} s after the load started`);
    const begunBefore = async () => (await reader.listUnfinished(100_000)).filter((t) => t.tx.createdAtMs <= killedAtMs).length;
    const unfinishedAtKill = await begunBefore();
    while ((await begunBefore()) > 0) {
      if (Date.now() - killedAtMs > FAILOVER_WAIT_MAX_MS) throw new Error(`failover: transfers begun before the kill still unfinished after ${FAILOVER_WAIT_MAX_MS} ms`);
      await new Promise((r) => setTimeout(r, FAILOVER_POLL_MS));
    }
    const finishedAfterMs = Date.now() - killedAtMs;
    log(`failover: ${unfinishedAtKill} transfers unfinished at the kill; all finished ${finishedAfterMs} ms after it`);
    return { victim: victim.name, killedAtS: (killedAtMs - goAt) / 1000, unfinishedAtKill, finishedAfterMs };
  } finally {
    await reader.close();
  }
}

/** Measures one concurrency level against a running system. */
export async function runPoint(system: BenchSystem, o: BenchOptions, concurrency: number, log: Log, progress: Log): Promise<PointResult> {
  const start = await system.totals();
  const workerCount = Math.min(o.workers, concurrency);
  const workers: Worker[] = [];
  try {
    for (let k = 0; k < workerCount; k++) {
      const child = fork(WORKER_FILE, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const w: Worker = { child, live: { committed: 0, aborted: 0, failed: 0, inFlight: 0 } };
      child.on('message', (m: FromWorker) => {
        if (m.type === 'progress' || m.type === 'result') w.live = m.live;
        if (m.type === 'result') {
          w.result = m.result;
          w.eventLoopUtilization = m.eventLoopUtilization;
        }
      });
      workers.push(w);
    }
    const { grpc: channel } = loadConfig({ path: system.configPath, sets: [...o.sets] });
    const planOf = (k: number): WorkerPlan => ({
      gatewayAddress: system.gatewayAddress,
      certsDir: system.certsDir,
      identity: 'client',
      banks: system.banks,
      accounts: o.accounts,
      prefix: o.prefix,
      password: o.password,
      currency: o.currency,
      sessions: Array.from({ length: concurrency }, (_, s) => s).filter((s) => s % workerCount === k),
      // At least one connection per gateway instance, so that every instance gets sessions.
      channels: Math.max(o.channels, system.gatewayAddress.split(',').length),
      callTimeoutMs: o.callTimeoutMs,
      channel,
      sameBankShare: o.sameBankShare,
      amount: formatAmountDist(o.amount),
      seed: o.seed,
    });
    const loginStarted = Date.now();
    const ready = workers.map((w) => onceFrom(w, 'ready', LOGIN_TIMEOUT_MS));
    workers.forEach((w, k) => w.child.send({ type: 'plan', plan: planOf(k) } satisfies ToWorker));
    await Promise.all(ready);
    const channels = Math.max(o.channels, system.gatewayAddress.split(',').length);
    log(`C=${concurrency}: ${concurrency} sessions logged in (${workerCount} worker${workerCount === 1 ? '' : 's'}, ${channels} channel${channels === 1 ? '' : 's'} each) in ${((Date.now() - loginStarted) / 1000).toFixed(1)} s`);

    const goAt = Date.now();
    const window = { measureFromMs: goAt + o.warmupS * 1000, endAtMs: goAt + (o.warmupS + o.durationS) * 1000 };
    const refs = [...system.nodes, ...workers.map((w, k) => ({ name: `loadgen${workerCount > 1 ? k : ''}`, pid: w.child.pid! }))];
    const results = workers.map((w) => onceFrom(w, 'result', o.warmupS * 1000 + o.durationS * 1000 + o.callTimeoutMs + RESULT_GRACE_MS));
    workers.forEach((w) => w.child.send({ type: 'go', window } satisfies ToWorker));

    let before: CpuSnapshot | undefined;
    let after: CpuSnapshot | undefined;
    let loadAvg1 = os.loadavg()[0]!;
    // Traced nodes dump (and restart) their histograms as the window opens and as it closes.
    let opened: Promise<unknown> | undefined;
    let closed: ReturnType<typeof collectDumps> | undefined;
    const t1 = setTimeout(() => {
      before = cpuSnapshot(refs);
      loadAvg1 = os.loadavg()[0]!;
      opened = collectDumps(system.traced);
    }, window.measureFromMs - Date.now());
    const t2 = setTimeout(() => {
      after = cpuSnapshot(refs);
      closed = opened?.then(() => collectDumps(system.traced));
    }, window.endAtMs - Date.now());
    let last = 0;
    const timeline: number[] = [];
    const failover = o.killGatewayAfterS === undefined ? undefined
      : killLater(system, window.measureFromMs + o.killGatewayAfterS * 1000, goAt, log);
    const ticker = setInterval(() => {
      const live = workers.reduce((a, w) => ({
        committed: a.committed + w.live.committed,
        aborted: a.aborted + w.live.aborted,
        failed: a.failed + w.live.failed,
        inFlight: a.inFlight + w.live.inFlight,
      }), { committed: 0, aborted: 0, failed: 0, inFlight: 0 });
      const now = Date.now();
      const phase = now < window.measureFromMs ? 'warm-up' : now < window.endAtMs ? 'measure' : 'draining';
      const elapsed = Math.round((now - goAt) / 1000);
      progress(`C=${concurrency} ${phase} ${elapsed}/${o.warmupS + o.durationS}s  committed ${live.committed} (+${live.committed - last}/s)  aborted ${live.aborted}  failed ${live.failed}  in flight ${live.inFlight}`);
      timeline.push(live.committed - last);
      last = live.committed;
    }, 1000);
    try {
      await Promise.all(results);
    } finally {
      clearInterval(ticker);
      clearTimeout(t1);
      clearTimeout(t2);
    }
    const merged = mergeWindows(workers.map((w) => w.result!));
    // The window's end may come before its timer ran (the workers answered first): read now.
    before ??= cpuSnapshot(refs);
    after ??= cpuSnapshot(refs);
    const cpu: CpuUse[] = [];
    let loadgen = 0;
    for (const [name, b] of before.byName) {
      const a = after.byName.get(name);
      if (a === undefined) continue;
      if (name.startsWith('loadgen') || name === 'bench') {
        loadgen += a - b;
        continue;
      }
      cpu.push({ name, seconds: a - b, corePct: ((a - b) / o.durationS) * 100 });
    }
    cpu.push({ name: 'loadgen', seconds: loadgen, corePct: (loadgen / o.durationS) * 100 });
    const dumps = system.traced.length > 0 ? await (closed ?? collectDumps(system.traced)) : undefined;
    const criticalPath: CriticalPath | undefined = dumps && {
      gateways: [...dumps].filter(([name]) => name.startsWith('gateway')).map(([name, d]) => ({ ...d, node: name })),
      banks: system.banks.flatMap((b) => dumps.get(b) ?? []),
      loadgenUtilization: workers.flatMap((w) => (w.eventLoopUtilization === undefined ? [] : [w.eventLoopUtilization])),
    };
    const machine = machineUse(before.machine, after.machine);
    const conservation = await settle(system, start);
    return {
      concurrency,
      durationS: o.durationS,
      warmupS: o.warmupS,
      committed: merged.committed,
      committedPerS: merged.committed / o.durationS,
      abortedTotal: totalOf(merged.aborted),
      failedTotal: totalOf(merged.failed),
      aborted: merged.aborted,
      failed: merged.failed,
      latency: summarizeLatencies(merged.latenciesMs),
      cpu,
      cpuMsPerTransfer: merged.committed > 0 ? (cpu.reduce((n, c) => n + c.seconds, 0) * 1000) / merged.committed : NaN,
      loadAvg1,
      machineBusyPct: machine.busyPct,
      machineStealPct: machine.stealPct,
      conservation,
      timeline,
      ...(failover ? { failover: await failover } : {}),
      ...(criticalPath ? { criticalPath } : {}),
    };
  } finally {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  }
}

/** The whole command: system up, every point of the sweep (or the one C), system down. */
export async function runBench(o: BenchOptions, log: Log, progress: Log): Promise<BenchReport> {
  const startedAt = new Date().toISOString();
  const system = o.targetConfig ? targetSystem(o) : await launchSystem(o, log);
  const points: PointResult[] = [];
  // Ctrl-C: stop the launched nodes (and remove the temp folder) before leaving.
  const interrupted = () => {
    log('interrupted: stopping the system');
    void system.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    for (const c of o.sweep ?? [o.concurrency]) points.push(await runPoint(system, o, c, log, progress));
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await system.stop();
  }
  return {
    startedAt,
    machine: machineInfo(),
    setup: {
      launched: !o.targetConfig,
      discovery: system.discovery,
      ...(o.targetConfig ? {} : { store: o.store }),
      gateways: system.gatewayAddress.split(',').length,
      banks: system.banks,
      accountsPerBank: o.accounts,
      historyRows: o.historyRows,
      sameBankShare: o.sameBankShare,
      amount: formatAmountDist(o.amount),
      seed: o.seed,
      workers: o.workers,
      channelsPerWorker: o.channels,
      trace: o.trace,
      sets: o.sets,
    },
    points,
  };
}

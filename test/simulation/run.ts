import { fork, spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { formatViolation, runScenario, type ScenarioResult } from './scenario.js';
import type { NetFault } from './network.js';

// `make sim`: SIM_SEED=n replays one scenario (prints its trace hash); SIM_SECONDS=N soaks with
// random seeds for N seconds; otherwise SIM_SCENARIOS seeds from SIM_FIRST_SEED (default 1).

export interface Totals {
  scenarios: number;
  steps: number;
  transfers: number;
  crashes: number;
  failedLogWrites: number;
  failedLedgerWrites: number;
  checks: number;
  faults: Record<NetFault, number>;
  failures: ScenarioResult[];
}

export function emptyTotals(): Totals {
  return { scenarios: 0, steps: 0, transfers: 0, crashes: 0, failedLogWrites: 0, failedLedgerWrites: 0, checks: 0, faults: { loss: 0, duplicate: 0, delay: 0, partition: 0, refused: 0 }, failures: [] };
}

/** Adds up the totals of scenarios run elsewhere (a job, a chunk of seeds). */
export function merge(into: Totals, t: Totals): void {
  into.scenarios += t.scenarios;
  addCounts(into, t);
  into.failures.push(...t.failures);
}

export function add(t: Totals, r: ScenarioResult): void {
  t.scenarios++;
  addCounts(t, r);
  if (r.violation) t.failures.push(r);
}

/** The counters a scenario reports and the totals add up. */
const COUNTERS = ['steps', 'transfers', 'crashes', 'failedLogWrites', 'failedLedgerWrites', 'checks'] as const;

function addCounts(into: Totals, from: Pick<Totals, (typeof COUNTERS)[number] | 'faults'>): void {
  for (const k of COUNTERS) into[k] += from[k];
  for (const k of Object.keys(into.faults) as NetFault[]) into.faults[k] += from.faults[k];
}

export function networkFaults(t: Totals): number {
  return Object.values(t.faults).reduce((a, b) => a + b, 0);
}

export function summary(t: Totals, wallMs: number): string {
  const faults = Object.entries(t.faults).map(([k, v]) => `${k} ${v}`).join(', ');
  return [
    `${t.scenarios} scenarios in ${(wallMs / 1000).toFixed(1)} s (${(t.scenarios / (wallMs / 1000)).toFixed(1)}/s), ${t.steps} events, ${t.transfers} transfers`,
    `node crashes ${t.crashes}; failed log writes ${t.failedLogWrites}; failed ledger writes ${t.failedLedgerWrites}; network faults ${networkFaults(t)} (${faults}); invariant checks ${t.checks}`,
    `violations: ${t.failures.length}`,
  ].join('\n');
}

/** Runs scenarios in this process: one seed, a count of seeds, or for a number of seconds. */
async function runHere(firstSeed: number, count: number, seconds: number, print: boolean): Promise<Totals> {
  const totals = emptyTotals();
  const started = Date.now();
  for (let seed = firstSeed; ; seed = (seed + 1) >>> 0) {
    if (seconds > 0 ? Date.now() - started >= seconds * 1000 : totals.scenarios >= count) break;
    const r = await runScenario(seed);
    add(totals, r);
    if (r.violation && print) process.stdout.write(`${formatViolation(seed, r.violation)}\n`);
  }
  return totals;
}

/** Splits the seeds over SIM_JOBS child processes (the machine's cores) and adds up their totals. */
async function runJobs(jobs: number, firstSeed: number, count: number, seconds: number): Promise<Totals> {
  const per = Math.ceil(count / jobs);
  const children = Array.from({ length: jobs }, (_, j) => new Promise<Totals>((resolve, reject) => {
    const env = {
      ...process.env, SIM_CHILD: '1', SIM_JOBS: '1',
      SIM_FIRST_SEED: String((firstSeed + j * (seconds > 0 ? 1_000_003 : per)) >>> 0),
      SIM_SCENARIOS: String(Math.max(0, Math.min(per, count - j * per))),
    };
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('exit', () => {
      const last = out.trim().split('\n').pop() ?? '';
      for (const line of out.trim().split('\n').slice(0, -1)) process.stdout.write(`${line}\n`);
      try {
        resolve(JSON.parse(last) as Totals);
      } catch {
        reject(new Error(`simulation job ${j} gave no totals: ${out.slice(-500)}`));
      }
    });
  }));
  const totals = emptyTotals();
  for (const t of await Promise.all(children)) merge(totals, t);
  return totals;
}

/** Seeds a pool worker is handed at a time: small enough to keep both cores busy to the end. */
const POOL_CHUNK_SEEDS = 8;

type PoolRequest = { readonly firstSeed: number; readonly count: number } | { readonly stop: true };

/**
 * Runs `count` seeds from `firstSeed` on `jobs` worker processes (forked with this process's
 * loader, e.g. tsx), handing out chunks of POOL_CHUNK_SEEDS seeds to whichever is free, so a worker
 * on a busier core simply does fewer. The totals do not depend on who ran what; failures come back
 * sorted by seed. `onFailure` hears of each failing scenario as soon as it is known.
 */
export async function runPool(jobs: number, firstSeed: number, count: number, onFailure?: (r: ScenarioResult) => void): Promise<Totals> {
  const totals = emptyTotals();
  let next = 0;
  const nextRequest = (): PoolRequest => {
    if (next >= count) return { stop: true };
    const chunk = { firstSeed: (firstSeed + next) >>> 0, count: Math.min(POOL_CHUNK_SEEDS, count - next) };
    next += chunk.count;
    return chunk;
  };
  const workers = Array.from({ length: Math.max(1, Math.min(jobs, Math.ceil(count / POOL_CHUNK_SEEDS))) }, (_, j) => new Promise<void>((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, SIM_CHILD: 'pool' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let asked: PoolRequest | undefined;
    const ask = () => {
      asked = nextRequest();
      child.send(asked);
    };
    child.on('message', (t: Totals) => {
      merge(totals, t);
      for (const f of t.failures) onFailure?.(f);
      ask();
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (asked && 'stop' in asked && code === 0) resolve();
      else reject(new Error(`simulation worker ${j} exited with ${code} (last asked ${JSON.stringify(asked)})`));
    });
    ask();
  }));
  await Promise.all(workers);
  totals.failures.sort((a, b) => a.seed - b.seed);
  return totals;
}

/** A pool worker: runs the chunks of seeds it is sent, answers each with its totals. */
function poolWorker(): void {
  process.on('message', (req: PoolRequest) => {
    if ('stop' in req) {
      process.disconnect();
      return;
    }
    runHere(req.firstSeed, req.count, 0, false).then(
      (t) => process.send!(JSON.parse(JSON.stringify(t, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as Totals),
      (err: unknown) => {
        process.stderr.write(`simulation worker: ${err instanceof Error ? err.stack : String(err)}\n`);
        process.exit(1);
      },
    );
  });
}

async function main(): Promise<void> {
  const env = process.env;
  if (env.SIM_CHILD === 'pool') {
    poolWorker();
    return;
  }
  if (env.SIM_SEED !== undefined && env.SIM_SEED !== '') {
    const seed = Number(env.SIM_SEED);
    const r = await runScenario(seed);
    process.stdout.write(`seed ${seed}: trace hash ${r.hash}, ${r.steps} events, ${r.transfers} transfers, ${r.crashes} crashes, ${r.failedLogWrites} failed log writes, ${r.failedLedgerWrites} failed ledger writes, `
      + `${Object.values(r.faults).reduce((a, b) => a + b, 0)} network faults, ${r.checks} checks\n`);
    if (r.violation) {
      process.stdout.write(`${formatViolation(seed, r.violation)}\n`);
      process.exitCode = 1;
    }
    return;
  }
  const seconds = Number(env.SIM_SECONDS ?? 0);
  const count = Number(env.SIM_SCENARIOS ?? 2000);
  const jobs = Number(env.SIM_JOBS ?? os.availableParallelism());
  const firstSeed = Number(env.SIM_FIRST_SEED ?? (seconds > 0 ? Math.floor(Math.random() * 2 ** 31) : 1));
  if (env.SIM_CHILD === '1') {
    const t = await runHere(firstSeed, count, seconds, true);
    process.stdout.write(`${JSON.stringify(t, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
    return;
  }
  const started = Date.now();
  if (seconds > 0) process.stdout.write(`soaking for ${seconds} s from seed ${firstSeed} on ${jobs} job(s)\n`);
  const totals = jobs <= 1 ? await runHere(firstSeed, count, seconds, true)
    : seconds > 0 ? await runJobs(jobs, firstSeed, count, seconds)
      : await runPool(jobs, firstSeed, count, (f) => process.stdout.write(`${formatViolation(f.seed, f.violation!)}\n`));
  process.stdout.write(`${summary(totals, Date.now() - started)}\n`);
  if (totals.failures.length > 0) {
    process.stdout.write(`failing seeds: ${totals.failures.map((f) => f.seed).join(' ')}\n`);
    process.exitCode = 1;
  }
}

// A rejection is left to Node: it prints the stack and exits non-zero, as a broken run should.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();

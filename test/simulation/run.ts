import { spawn } from 'node:child_process';
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
  checks: number;
  faults: Record<NetFault, number>;
  failures: ScenarioResult[];
}

export function emptyTotals(): Totals {
  return { scenarios: 0, steps: 0, transfers: 0, crashes: 0, checks: 0, faults: { loss: 0, duplicate: 0, delay: 0, partition: 0, refused: 0 }, failures: [] };
}

export function add(t: Totals, r: ScenarioResult): void {
  t.scenarios++;
  t.steps += r.steps;
  t.transfers += r.transfers;
  t.crashes += r.crashes;
  t.checks += r.checks;
  for (const k of Object.keys(t.faults) as NetFault[]) t.faults[k] += r.faults[k];
  if (r.violation) t.failures.push(r);
}

export function networkFaults(t: Totals): number {
  return Object.values(t.faults).reduce((a, b) => a + b, 0);
}

export function summary(t: Totals, wallMs: number): string {
  const faults = Object.entries(t.faults).map(([k, v]) => `${k} ${v}`).join(', ');
  return [
    `${t.scenarios} scenarios in ${(wallMs / 1000).toFixed(1)} s (${(t.scenarios / (wallMs / 1000)).toFixed(1)}/s), ${t.steps} events, ${t.transfers} transfers`,
    `node crashes ${t.crashes}; network faults ${networkFaults(t)} (${faults}); invariant checks ${t.checks}`,
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
  for (const t of await Promise.all(children)) {
    totals.scenarios += t.scenarios;
    totals.steps += t.steps;
    totals.transfers += t.transfers;
    totals.crashes += t.crashes;
    totals.checks += t.checks;
    for (const k of Object.keys(totals.faults) as NetFault[]) totals.faults[k] += t.faults[k];
    totals.failures.push(...t.failures);
  }
  return totals;
}

async function main(): Promise<void> {
  const env = process.env;
  if (env.SIM_SEED !== undefined && env.SIM_SEED !== '') {
    const seed = Number(env.SIM_SEED);
    const r = await runScenario(seed);
    process.stdout.write(`seed ${seed}: trace hash ${r.hash}, ${r.steps} events, ${r.transfers} transfers, ${r.crashes} crashes, `
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
  const totals = jobs > 1 ? await runJobs(jobs, firstSeed, count, seconds) : await runHere(firstSeed, count, seconds, true);
  process.stdout.write(`${summary(totals, Date.now() - started)}\n`);
  if (totals.failures.length > 0) {
    process.stdout.write(`failing seeds: ${totals.failures.map((f) => f.seed).join(' ')}\n`);
    process.exitCode = 1;
  }
}

// A rejection is left to Node: it prints the stack and exits non-zero, as a broken run should.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();

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
  const totals = emptyTotals();
  const started = Date.now();
  const seconds = Number(env.SIM_SECONDS ?? 0);
  const count = Number(env.SIM_SCENARIOS ?? 2000);
  let seed = Number(env.SIM_FIRST_SEED ?? (seconds > 0 ? Math.floor(Math.random() * 2 ** 31) : 1));
  for (;;) {
    if (seconds > 0 ? Date.now() - started >= seconds * 1000 : totals.scenarios >= count) break;
    const r = await runScenario(seed);
    add(totals, r);
    if (r.violation) process.stdout.write(`${formatViolation(seed, r.violation)}\n`);
    seed = (seed + 1) >>> 0;
  }
  process.stdout.write(`${summary(totals, Date.now() - started)}\n`);
  if (totals.failures.length > 0) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) void main();

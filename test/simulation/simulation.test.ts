import os from 'node:os';
import { expect } from 'chai';
import type { TestBug } from '../../src/core/test-bugs.js';
import { add, emptyTotals, networkFaults, runPool, summary, type Totals } from './run.js';
import { formatViolation, runScenario, type Invariant } from './scenario.js';

// The deterministic simulation (test/simulation/README.md): the real protocol code under crashes
// and network faults, driven by one seed. The suite runs as many seeds as `make sim`, spread over
// one worker process per core (SIM_JOBS); SIM_TEST_SCENARIOS=n runs fewer or more.

const SUITE_SCENARIOS = Number(process.env.SIM_TEST_SCENARIOS ?? 2000);
const SUITE_JOBS = Number(process.env.SIM_JOBS ?? os.availableParallelism());
/** The faults really happen (a run without them would prove nothing): on average per scenario at least */
const CRASHES_MIN_PER_SCENARIO = 5;
const NETWORK_FAULTS_MIN_PER_SCENARIO = 50;
/** Group commits of the gateway's log that failed (its disk failing writes). */
const FAILED_LOG_WRITES_MIN_PER_SCENARIO = 1;
/** The same of the banks' ledgers. */
const FAILED_LEDGER_WRITES_MIN_PER_SCENARIO = 1;
/** A broken variant must be caught within this many seeds. */
const DETECTION_SEEDS_MAX = 30;

describe('deterministic simulation', function () {
  this.timeout(600_000);

  it('replays a seed exactly: two runs give the same trace hash, another seed another one', async () => {
    const a = await runScenario(42);
    const b = await runScenario(42);
    const c = await runScenario(43);
    expect(a.violation).to.equal(undefined);
    expect(a.hash).to.equal(b.hash);
    expect(a.steps).to.equal(b.steps);
    expect(c.hash).to.not.equal(a.hash);
  });

  it(`${SUITE_SCENARIOS} seeded scenarios keep every invariant, with at least ${CRASHES_MIN_PER_SCENARIO * SUITE_SCENARIOS} node crashes`
    + `, ${NETWORK_FAULTS_MIN_PER_SCENARIO * SUITE_SCENARIOS} network faults, ${FAILED_LOG_WRITES_MIN_PER_SCENARIO * SUITE_SCENARIOS} failed log writes`
    + ` and ${FAILED_LEDGER_WRITES_MIN_PER_SCENARIO * SUITE_SCENARIOS} failed ledger writes`, async () => {
    const started = Date.now();
    let totals: Totals;
    if (SUITE_JOBS > 1) {
      totals = await runPool(SUITE_JOBS, 1, SUITE_SCENARIOS);
    } else {
      totals = emptyTotals();
      for (let seed = 1; seed <= SUITE_SCENARIOS; seed++) add(totals, await runScenario(seed));
    }
    process.stdout.write(`      ${summary(totals, Date.now() - started).split('\n').join('\n      ')} (${SUITE_JOBS} job(s))\n`);
    const first = totals.failures[0];
    expect(first?.violation && formatViolation(first.seed, first.violation)).to.equal(undefined);
    expect(totals.scenarios).to.equal(SUITE_SCENARIOS);
    expect(totals.crashes).to.be.at.least(CRASHES_MIN_PER_SCENARIO * SUITE_SCENARIOS);
    expect(networkFaults(totals)).to.be.at.least(NETWORK_FAULTS_MIN_PER_SCENARIO * SUITE_SCENARIOS);
    expect(totals.failedLogWrites).to.be.at.least(FAILED_LOG_WRITES_MIN_PER_SCENARIO * SUITE_SCENARIOS);
    expect(totals.failedLedgerWrites).to.be.at.least(FAILED_LEDGER_WRITES_MIN_PER_SCENARIO * SUITE_SCENARIOS);
  });

  const variants: ReadonlyArray<readonly [TestBug, readonly Invariant[]]> = [
    ['commitBeforeDecisionDurable', ['decision-durable-before-commit']],
    ['forgetAbortTombstone', ['abort-final-at-bank']],
    // The ledger's own pair assertion (a hold to release is missing) often fires first.
    ['abortReleasesSettledLeg', ['holds-match-prepared-legs', 'node-assertion']],
    ['replayStartsSecondTransfer', ['one-outcome-per-key']],
    ['recoverySkipsPresumedAbort', ['settles']],
    ['strandedLeftUndriven', ['settles']],
  ];
  for (const [bug, invariants] of variants) {
    it(`catches the broken variant ${bug} (${invariants.join(' or ')}) within ${DETECTION_SEEDS_MAX} seeds`, async () => {
      for (let seed = 1; seed <= DETECTION_SEEDS_MAX; seed++) {
        const r = await runScenario(seed, { bugs: { [bug]: true } });
        if (!r.violation) continue;
        expect(invariants, formatViolation(seed, r.violation)).to.include(r.violation.invariant);
        process.stdout.write(`      ${bug}: seed ${seed}, ${r.violation.invariant} at step ${r.violation.step}\n`);
        return;
      }
      expect.fail(`${bug} went unnoticed for ${DETECTION_SEEDS_MAX} seeds`);
    });
  }
});

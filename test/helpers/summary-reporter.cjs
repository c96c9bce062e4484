// Mocha's spec output plus the closing line CI reads: "N passed, N failed[, N skipped]".
'use strict';
const Mocha = require('mocha');

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats || {};
      // Registered after Spec's own listener, so this follows the epilogue. Synchronous: with
      // --exit mocha ends the process right after this event.
      const skipped = s.pending ? `, ${s.pending} skipped` : '';
      // Checks .ci/run ran before the tests and that failed (e.g. "lint"): said right above the counts.
      const failedChecks = process.env.PAYMENTS_CI_FAILED_CHECKS;
      if (failedChecks) process.stdout.write(`\nFAILED before the tests: ${failedChecks} (see its output above); CI fails\n`);
      process.stdout.write(`\n${s.passes || 0} passed, ${s.failures || 0} failed${skipped}\n`);
    });
  }
}

module.exports = SummaryReporter;

// Deliberately broken protocol variants, switched on only by tests (test/simulation) to prove that
// the simulator catches each one. Nothing in config or the environment reaches these flags; every
// one is false in a running system.

export interface TestBugs {
  /** The driver sends Commit without waiting for the commit decision to be durable. */
  commitBeforeDecisionDurable: boolean;
  /** A bank aborting a transaction it never saw leaves no tombstone (a late prepare is accepted). */
  forgetAbortTombstone: boolean;
  /** A bank's abort releases the debit hold of a leg again although it is no longer held (committed or released). */
  abortReleasesSettledLeg: boolean;
  /** A replay of a finished key starts the transfer again instead of answering the stored outcome. */
  replayStartsSecondTransfer: boolean;
  /** Recovery leaves undecided transfers undecided instead of presuming abort. */
  recoverySkipsPresumedAbort: boolean;
  /** A transfer whose log write failed is left to the next restart instead of being driven again. */
  strandedLeftUndriven: boolean;
}

export type TestBug = keyof TestBugs;

export const testBugs: TestBugs = {
  commitBeforeDecisionDurable: false,
  forgetAbortTombstone: false,
  abortReleasesSettledLeg: false,
  replayStartsSecondTransfer: false,
  recoverySkipsPresumedAbort: false,
  strandedLeftUndriven: false,
};

/** Switches every variant off (tests call it after each case). */
export function resetTestBugs(): void {
  for (const k of Object.keys(testBugs) as TestBug[]) testBugs[k] = false;
}

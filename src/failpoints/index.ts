// Named crash points for tests (issue: crash safety, proven). A test arms some by name through
// the environment, e.g. PAYMENTS_FAILPOINTS="gateway.after_decision_persisted"; when the code
// reaches an armed point the process dies at once, as with SIGKILL: no shutdown handler, no
// flush, no cleanup. Off by default, and then every check is one boolean test.
//
// A point may carry a qualifier (the leg of a transfer): `failpoint('gateway.after_vote_received',
// 'credit')` fires when either "gateway.after_vote_received" or
// "gateway.after_vote_received.credit" is armed.

export const FAILPOINTS_ENV = 'PAYMENTS_FAILPOINTS';

/** Every crash point the code has, so a typo in a test's list is refused instead of never firing. */
export const FAILPOINT_NAMES = [
  // gateway: the transfer and its idempotency key are on disk, no prepare has left
  'gateway.after_begin_persisted',
  // gateway: one prepare call has been issued (qualifier: debit | credit)
  'gateway.after_prepare_sent',
  // gateway: a bank's vote arrived, the coordinator has not seen it (qualifier: debit | credit)
  'gateway.after_vote_received',
  // gateway: the commit or abort decision is on disk, no phase-2 call has left
  'gateway.after_decision_persisted',
  // gateway: one bank acknowledged its Commit, another bank's Commit is still outstanding
  'gateway.between_commits',
  // gateway: the last bank acknowledged phase 2; the completion is not on disk yet
  'gateway.after_last_ack',
  // bank: a prepared leg (the hold of a debit) is on disk; the vote has not been sent (qualifier: debit | credit)
  'bank.after_prepare_persisted',
  // bank: a commit is applied on disk; the answer has not been sent
  'bank.after_commit_applied',
  // bank: an abort is applied on disk; the answer has not been sent
  'bank.after_abort_applied',
] as const;

export type FailpointName = (typeof FAILPOINT_NAMES)[number];

let armed: ReadonlySet<string> = new Set();
/** The only thing a check reads when no point is armed. */
let anyArmed = false;

/**
 * Arms exactly `names` (replacing what was armed). Each is a point name, optionally with a
 * ".qualifier". Throws on an unknown name.
 */
export function armFailpoints(names: readonly string[]): void {
  for (const n of names) {
    const known = FAILPOINT_NAMES.some((f) => n === f || n.startsWith(`${f}.`));
    if (!known) throw new Error(`unknown failpoint "${n}" (known: ${FAILPOINT_NAMES.join(', ')})`);
  }
  armed = new Set(names);
  anyArmed = armed.size > 0;
}

/** Parses the environment variable's value: names separated by commas or spaces. */
export function parseFailpoints(value: string | undefined): string[] {
  return (value ?? '').split(/[\s,]+/).filter((s) => s.length > 0);
}

/** True when some point is armed (lets a caller skip work that only feeds a check). */
export function failpointsArmed(): boolean {
  return anyArmed;
}

/** Crashes the process if `name` (or `name.qualifier`) is armed; otherwise does nothing. */
export function failpoint(name: FailpointName, qualifier?: string): void {
  if (!anyArmed) return;
  if (armed.has(name) || (qualifier !== undefined && armed.has(`${name}.${qualifier}`))) crash(name, qualifier);
}

function crash(name: string, qualifier: string | undefined): never {
  // Writes to a pipe or file are synchronous on Linux, so the line is out before the kill.
  process.stderr.write(`{"event":"failpoint","name":"${name}${qualifier ? `.${qualifier}` : ''}","pid":${process.pid}}\n`);
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL cannot be caught; this is only reached if the kill itself failed.
  process.abort();
}

armFailpoints(parseFailpoints(process.env[FAILPOINTS_ENV]));

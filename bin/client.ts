#!/usr/bin/env node
// The payments client: subcommands for scripts, a numbered menu for people. Wiring only: see src/client/cli.ts.
import { runCli } from '../src/client/cli.js';

/** Exit code for a bug (BSD sysexits EX_SOFTWARE), distinct from the documented outcomes 0-4. */
const EXIT_INTERNAL = 70;

// A promise chain, not a top-level await: the client is bundled as CommonJS (scripts/bundle-client.mjs).
runCli(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
}).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(EXIT_INTERNAL);
  },
);

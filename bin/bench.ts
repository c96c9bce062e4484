#!/usr/bin/env node
// The benchmark command: wiring only (src/bench/*). `bin/bench --help` lists the options.
import fs from 'node:fs';
import path from 'node:path';
import { toJson } from '../src/core/json.js';
import { formatProfileSummary, summarizeProfile, type CpuProfile } from '../src/bench/cpuprofile.js';
import { BENCH_USAGE, parseBenchArgs } from '../src/bench/options.js';
import { formatReport, markdownSection, writeDocsSection } from '../src/bench/report.js';
import { runBench } from '../src/bench/run.js';

const parsed = parseBenchArgs(process.argv.slice(2));
if (!parsed.ok) {
  process.stderr.write(`error: ${parsed.message}\n${BENCH_USAGE}\n`);
  process.exit(2);
}
const cmd = parsed.value;

if (cmd.command === 'help') {
  process.stdout.write(`${BENCH_USAGE}\n`);
} else if (cmd.command === 'profile-summary') {
  const out: Record<string, unknown> = {};
  for (const file of cmd.files) {
    const summary = summarizeProfile(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile, cmd.top);
    if (cmd.json) out[path.basename(file)] = summary;
    else process.stdout.write(`${formatProfileSummary(path.basename(file), summary)}\n\n`);
  }
  if (cmd.json) process.stdout.write(`${toJson(out, 2)}\n`);
} else {
  const o = cmd.options;
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const progress = o.quiet ? () => undefined : (line: string) => process.stderr.write(`bench: ${line}\n`);
  try {
    const report = await runBench(o, log, progress);
    process.stdout.write(o.json ? `${toJson(report, 2)}\n` : `${formatReport(report)}\n`);
    if (o.docs) {
      const command = `bin/bench ${process.argv.slice(2).map((a) => (/[\s"'$]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`;
      writeDocsSection(o.docs, o.label, markdownSection(report, o.label, command));
      log(`wrote section "${o.label}" into ${o.docs}`);
    }
    if (report.points.some((p) => !p.conservation.conserved)) {
      log('money was NOT conserved');
      process.exitCode = 1;
    }
  } catch (err) {
    log(`failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}

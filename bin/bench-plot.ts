#!/usr/bin/env node
// The benchmark plot: wiring only (src/bench/plot.ts). `bin/bench-plot --help` lists the options.
import fs from 'node:fs';
import path from 'node:path';
import { describeRuns, disambiguate, parsePlotArgs, PLOT_USAGE, renderPlot, seriesFromReport, type PlotSeries } from '../src/bench/plot.js';

function die(message: string, code: number): never {
  process.stderr.write(`bench-plot: ${message}\n`);
  process.exit(code);
}

const parsed = parsePlotArgs(process.argv.slice(2));
if (!parsed.ok) die(`${parsed.message}\n${PLOT_USAGE}`, 2);
const cmd = parsed.value;
if (cmd.command === 'help') {
  process.stdout.write(`${PLOT_USAGE}\n`);
  process.exit(0);
}

const series: PlotSeries[] = [];
const reports: unknown[] = [];
for (const input of cmd.inputs) {
  let report: unknown;
  try {
    report = JSON.parse(fs.readFileSync(input.file, 'utf8'));
  } catch (err) {
    die(`${input.file}: ${err instanceof Error ? err.message : String(err)}`, 2);
  }
  const s = seriesFromReport(report, input.file, input.label);
  if (!s.ok) die(s.message, 2);
  series.push(s.value);
  reports.push(report);
}
const svg = renderPlot(disambiguate(series, cmd.inputs.map((i) => path.basename(i.file))), {
  title: cmd.title,
  subtitle: describeRuns(reports),
  xScale: cmd.xScale,
});
if (!svg.ok) die(svg.message, 2);
fs.mkdirSync(path.dirname(cmd.out), { recursive: true });
fs.writeFileSync(cmd.out, svg.value);
process.stderr.write(`bench-plot: wrote ${cmd.out} (${series.map((s) => `"${s.label}"`).join(', ')})\n`);

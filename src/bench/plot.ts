import { fail, ok, type Result } from '../core/errors.js';

// `bin/bench-plot`: committed transfers/s and p99 latency against concurrency C, one line per
// configuration, from the JSON reports of `bin/bench --json`. Pure: reports in, an SVG string out
// (the CLI reads the files and writes the image). No plotting library: axes, ticks, lines, markers
// and legend are a few dozen SVG elements.

/** One measured point of a configuration, as plotted. */
export interface PlotPoint {
  readonly concurrency: number;
  readonly committedPerS: number;
  /** Undefined when nothing committed at that C (the report holds null): no latency marker there. */
  readonly p99Ms: number | undefined;
}

/** One configuration: one line in each panel. */
export interface PlotSeries {
  readonly label: string;
  /** By ascending concurrency. */
  readonly points: readonly PlotPoint[];
}

export type XScale = 'log' | 'linear';

export interface PlotOptions {
  readonly title: string;
  /** A second line under the title (machine, window); omitted when empty. */
  readonly subtitle: string;
  readonly xScale: XScale;
}

/** Bounds of the picture, so that a bad input cannot produce a megabyte of SVG. */
export const PLOT_LIMITS = {
  seriesMax: 12,
  pointsPerSeriesMax: 64,
  labelCharsMax: 60,
} as const;

/** Okabe-Ito: distinguishable with the common colour-vision deficiencies. */
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'] as const;
/** Dash patterns repeat the distinction for more series than colours, and in grey-scale print. */
const DASHES = ['', '6 3', '2 3', '8 3 2 3'] as const;

// ---- reading reports ------------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * The legend name of a report from its setup: "sqlite, 1 gateway, 2 banks". Reports written before
 * `setup.store` / `setup.gateways` existed (issue 12) give what they have; "targeted" for a run
 * against a system bin/bench did not launch.
 */
export function defaultLabel(setup: Record<string, unknown>): string {
  const parts: string[] = [];
  if (setup.store === 'sqlite' || setup.store === 'postgres') parts.push(setup.store);
  else if (setup.launched === false) parts.push('targeted');
  if (typeof setup.gateways === 'number') parts.push(plural(setup.gateways, 'gateway'));
  if (Array.isArray(setup.banks)) parts.push(plural(setup.banks.length, 'bank'));
  if (typeof setup.historyRows === 'number' && setup.historyRows > 0) parts.push(`${setup.historyRows} history rows`);
  return parts.length > 0 ? parts.join(', ') : 'bench';
}

/**
 * One series from a parsed `bin/bench --json` report (`source` names it in messages; `label`
 * overrides the name taken from its setup). A report that is not one, or that has no points, is
 * refused with a message that says which file and what is wrong.
 */
export function seriesFromReport(report: unknown, source: string, label?: string): Result<PlotSeries> {
  if (!isRecord(report) || !Array.isArray(report.points)) {
    return fail('INVALID_ARGUMENT', `${source}: not a bin/bench --json report (no "points" array)`);
  }
  if (report.points.length === 0) {
    return fail('INVALID_ARGUMENT', `${source}: the report has no points (nothing was measured), nothing to plot`);
  }
  if (report.points.length > PLOT_LIMITS.pointsPerSeriesMax) {
    return fail('INVALID_ARGUMENT', `${source}: ${report.points.length} points, at most ${PLOT_LIMITS.pointsPerSeriesMax} are plotted`);
  }
  const points: PlotPoint[] = [];
  for (const [i, p] of report.points.entries()) {
    const where = `${source}: point ${i + 1}`;
    if (!isRecord(p)) return fail('INVALID_ARGUMENT', `${where} is not an object`);
    const c = p.concurrency;
    if (typeof c !== 'number' || !Number.isSafeInteger(c) || c < 1) return fail('INVALID_ARGUMENT', `${where}: "concurrency" must be a positive integer`);
    const rate = p.committedPerS;
    if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0) return fail('INVALID_ARGUMENT', `${where} (C=${c}): "committedPerS" must be a number >= 0`);
    const p99 = isRecord(p.latency) ? p.latency.p99Ms : undefined;
    // JSON has no NaN: a point with no committed transfer carries null.
    if (p99 !== null && (typeof p99 !== 'number' || !Number.isFinite(p99) || p99 < 0)) {
      return fail('INVALID_ARGUMENT', `${where} (C=${c}): "latency.p99Ms" must be a number >= 0 or null`);
    }
    if (points.some((q) => q.concurrency === c)) return fail('INVALID_ARGUMENT', `${where}: C=${c} appears twice`);
    points.push({ concurrency: c, committedPerS: rate, p99Ms: p99 === null ? undefined : p99 });
  }
  points.sort((a, b) => a.concurrency - b.concurrency);
  const name = label ?? (isRecord(report.setup) ? defaultLabel(report.setup) : 'bench');
  if (name.length === 0 || name.length > PLOT_LIMITS.labelCharsMax) {
    return fail('INVALID_ARGUMENT', `${source}: a label must have 1 to ${PLOT_LIMITS.labelCharsMax} characters`);
  }
  return ok({ label: name, points });
}

/** Equal labels (two files of the same configuration) get their source appended, so the legend tells them apart. */
export function disambiguate(series: readonly PlotSeries[], sources: readonly string[]): PlotSeries[] {
  return series.map((s, i) => (series.filter((t) => t.label === s.label).length > 1 ? { ...s, label: `${s.label} (${sources[i]})` } : s));
}

/**
 * The subtitle: machine and window of the first report, the load average over every report's points
 * and their dates ("2 cores, Node v22.1.0; 3 s measured per C after 1 s warm-up; load average
 * 3.4-9.2; 2025-01-02"); '' when the reports say none of it.
 */
export function describeRuns(reports: readonly unknown[]): string {
  const rs = reports.filter(isRecord);
  const first = rs[0];
  if (!first) return '';
  const parts: string[] = [];
  const m = first.machine;
  if (isRecord(m) && typeof m.nproc === 'number') parts.push(`${plural(m.nproc, 'core')}${typeof m.node === 'string' ? `, Node ${m.node}` : ''}`);
  const pointsOf = (r: Record<string, unknown>) => (Array.isArray(r.points) ? r.points.filter(isRecord) : []);
  const p0 = pointsOf(first)[0];
  if (p0 && typeof p0.durationS === 'number' && typeof p0.warmupS === 'number') {
    parts.push(`${p0.durationS} s measured per C after ${p0.warmupS} s warm-up`);
  }
  // Other work on the machine shows in the load average, and in every number of the picture.
  const loads = rs.flatMap(pointsOf).flatMap((p) => (typeof p.loadAvg1 === 'number' ? [p.loadAvg1] : []));
  if (loads.length > 0) {
    const lo = Math.min(...loads).toFixed(1);
    const hi = Math.max(...loads).toFixed(1);
    parts.push(`load average ${lo === hi ? lo : `${lo}-${hi}`}`);
  }
  const dates = [...new Set(rs.flatMap((r) => (typeof r.startedAt === 'string' ? [r.startedAt.slice(0, 10)] : [])))].sort();
  if (dates.length > 0) parts.push(dates.length === 1 ? dates[0]! : `${dates[0]} to ${dates[dates.length - 1]}`);
  return parts.join('; ');
}

// ---- scales and ticks -----------------------------------------------------------------------

/** 1, 2 or 5 times a power of ten, at least `x`. */
function niceStep(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  const f = x / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/** Ticks 0 .. >= max with about `count` steps; the last tick is the top of the axis. */
export function linearTicks(max: number, count = 5): number[] {
  const top = max > 0 ? max : 1;
  const step = niceStep(top / count);
  const ticks: number[] = [];
  for (let i = 0; ticks.length === 0 || ticks[ticks.length - 1]! < top; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/** Powers of two covering [min, max] (C is usually swept by powers of two); at least two ticks. */
export function log2Ticks(min: number, max: number): number[] {
  let lo = 2 ** Math.floor(Math.log2(min));
  let hi = 2 ** Math.ceil(Math.log2(max));
  if (lo === hi) {
    lo = Math.max(1, lo / 2);
    hi *= 2;
  }
  const ticks: number[] = [];
  // Every power when few, else every other one, so that the labels do not collide.
  const span = Math.log2(hi / lo);
  const stride = span > 10 ? 2 : 1;
  for (let e = 0; e <= span; e += stride) ticks.push(lo * 2 ** e);
  if (ticks[ticks.length - 1] !== hi) ticks.push(hi);
  return ticks;
}

/** "1,234", "0.5", "12.5": no trailing zeros, thousands grouped. */
export function formatTick(x: number): string {
  const [int, frac] = String(Number(x.toPrecision(12))).split('.');
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac ? `${grouped}.${frac}` : grouped;
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[ch]!);
}

function num(x: number): string {
  return String(Math.round(x * 10) / 10);
}

// ---- rendering ------------------------------------------------------------------------------

interface Panel {
  readonly id: 'throughput' | 'p99';
  readonly title: string;
  readonly yTitle: string;
  readonly value: (p: PlotPoint) => number | undefined;
}

const PANELS: readonly Panel[] = [
  { id: 'throughput', title: 'Throughput', yTitle: 'committed transfers/s', value: (p) => p.committedPerS },
  { id: 'p99', title: 'Latency, 99th percentile', yTitle: 'p99 latency (ms)', value: (p) => p.p99Ms },
];

const LAYOUT = {
  panelWidth: 440,
  panelHeight: 300,
  marginLeft: 74,
  marginRight: 24,
  headerHeight: 64,
  panelTitleHeight: 22,
  axisHeight: 50,
  legendRowHeight: 22,
  legendColumns: 2,
  font: 'system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif',
} as const;

/**
 * The SVG image: two panels side by side (committed transfers/s and p99 latency, each against C),
 * one line per series in both, a shared legend below. Refuses no series, a series without points,
 * and more series than PLOT_LIMITS allows.
 */
export function renderPlot(series: readonly PlotSeries[], options: PlotOptions): Result<string> {
  if (series.length === 0) return fail('INVALID_ARGUMENT', 'nothing to plot: give at least one bench report');
  if (series.length > PLOT_LIMITS.seriesMax) return fail('INVALID_ARGUMENT', `${series.length} series, at most ${PLOT_LIMITS.seriesMax} are plotted`);
  const empty = series.find((s) => s.points.length === 0);
  if (empty) return fail('INVALID_ARGUMENT', `series "${empty.label}" has no points, nothing to plot`);

  const L = LAYOUT;
  const cs = series.flatMap((s) => s.points.map((p) => p.concurrency));
  const cMin = Math.min(...cs);
  const cMax = Math.max(...cs);
  const xTicks = options.xScale === 'log' ? log2Ticks(cMin, cMax) : linearTicks(cMax, 6);
  const xLo = options.xScale === 'log' ? xTicks[0]! : 0;
  const xHi = xTicks[xTicks.length - 1]!;
  const plotW = L.panelWidth - L.marginLeft - L.marginRight;
  const plotH = L.panelHeight - L.panelTitleHeight - L.axisHeight;
  const xOf = (c: number) => (options.xScale === 'log'
    ? ((Math.log2(c) - Math.log2(xLo)) / (Math.log2(xHi) - Math.log2(xLo))) * plotW
    : ((c - xLo) / (xHi - xLo)) * plotW);

  const legendRows = Math.ceil(series.length / L.legendColumns);
  const width = L.panelWidth * PANELS.length;
  const height = L.headerHeight + L.panelHeight + 16 + legendRows * L.legendRowHeight + 12;
  const style = (i: number) => {
    const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
    return { color: PALETTE[i % PALETTE.length]!, dash: dash ? ` stroke-dasharray="${dash}"` : '' };
  };

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family='${L.font}' font-size="12">`);
  out.push(`<title>${escapeXml(options.title)}</title>`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(options.title)}</text>`);
  if (options.subtitle) out.push(`<text x="${width / 2}" y="44" text-anchor="middle" fill="#555555">${escapeXml(options.subtitle)}</text>`);

  PANELS.forEach((panel, k) => {
    const values = series.flatMap((s) => s.points.map(panel.value).filter((v): v is number => v !== undefined));
    const yTicks = linearTicks(values.length > 0 ? Math.max(...values) : 1);
    const yHi = yTicks[yTicks.length - 1]!;
    const yOf = (v: number) => plotH - (v / yHi) * plotH;
    const ox = k * L.panelWidth + L.marginLeft;
    const oy = L.headerHeight + L.panelTitleHeight;
    out.push(`<g class="panel" data-panel="${panel.id}" transform="translate(${ox},${oy})">`);
    out.push(`<text x="${plotW / 2}" y="-10" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(panel.title)}</text>`);
    // Grid and y ticks.
    for (const t of yTicks) {
      const y = num(yOf(t));
      out.push(`<line x1="0" y1="${y}" x2="${plotW}" y2="${y}" stroke="#e5e5e5"/>`);
      out.push(`<text x="-8" y="${y}" text-anchor="end" dominant-baseline="middle">${formatTick(t)}</text>`);
    }
    for (const t of xTicks) {
      const x = num(xOf(t));
      out.push(`<line x1="${x}" y1="${plotH}" x2="${x}" y2="${plotH + 5}" stroke="#333333"/>`);
      out.push(`<text x="${x}" y="${plotH + 18}" text-anchor="middle">${formatTick(t)}</text>`);
    }
    out.push(`<line class="axis" x1="0" y1="${plotH}" x2="${plotW}" y2="${plotH}" stroke="#333333"/>`);
    out.push(`<line class="axis" x1="0" y1="0" x2="0" y2="${plotH}" stroke="#333333"/>`);
    const xTitle = `concurrency C (client sessions${options.xScale === 'log' ? ', log scale' : ''})`;
    out.push(`<text class="axis-title" x="${plotW / 2}" y="${plotH + 38}" text-anchor="middle">${escapeXml(xTitle)}</text>`);
    out.push(`<text class="axis-title" transform="translate(${-L.marginLeft + 16},${plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(panel.yTitle)}</text>`);
    // One line per series, with a marker per point (its values as a tooltip).
    series.forEach((s, i) => {
      const { color, dash } = style(i);
      const pts = s.points.flatMap((p) => {
        const v = panel.value(p);
        return v === undefined ? [] : [{ p, v, x: num(xOf(p.concurrency)), y: num(yOf(v)) }];
      });
      out.push(`<g class="series" data-series="${i}">`);
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${pts.map((q) => `${q.x},${q.y}`).join(' ')}"/>`);
      for (const q of pts) {
        const tip = `${s.label}: C=${q.p.concurrency}, ${formatTick(Number(q.v.toFixed(q.v < 10 ? 2 : 0)))} ${panel.id === 'p99' ? 'ms' : 'transfers/s'}`;
        out.push(`<circle cx="${q.x}" cy="${q.y}" r="3.5" fill="${color}"><title>${escapeXml(tip)}</title></circle>`);
      }
      out.push('</g>');
    });
    out.push('</g>');
  });

  // Legend: a swatch of each line and its configuration, in columns under the panels.
  const ly = L.headerHeight + L.panelHeight + 16;
  out.push(`<g class="legend" transform="translate(${L.marginLeft},${ly})">`);
  series.forEach((s, i) => {
    const { color, dash } = style(i);
    const x = (i % L.legendColumns) * L.panelWidth;
    const y = Math.floor(i / L.legendColumns) * L.legendRowHeight;
    out.push(`<line x1="${x}" y1="${y}" x2="${x + 28}" y2="${y}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<circle cx="${x + 14}" cy="${y}" r="3.5" fill="${color}"/>`);
    out.push(`<text class="legend-label" x="${x + 36}" y="${y}" dominant-baseline="middle">${escapeXml(s.label)}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return ok(`${out.join('\n')}\n`);
}

// ---- command line ---------------------------------------------------------------------------

export const PLOT_USAGE = `usage: bin/bench-plot --out FILE.svg [--title TEXT] [--x log|linear] [LABEL=]REPORT.json...

  REPORT.json     a report of bin/bench --json (stdout); one line per report in each panel
  LABEL=          the legend name of that report (default: from its setup, e.g. "sqlite, 1 gateway, 2 banks")
  --out FILE      the SVG to write (required)
  --title TEXT    (default "bin/bench: committed transfers/s and p99 latency against concurrency")
  --x log|linear  the C axis (default log: powers of two)`;

export const DEFAULT_PLOT_TITLE = 'bin/bench: committed transfers/s and p99 latency against concurrency';

export interface PlotInput {
  readonly file: string;
  readonly label: string | undefined;
}

export type PlotCommand =
  | { readonly command: 'help' }
  | { readonly command: 'plot'; readonly out: string; readonly title: string; readonly xScale: XScale; readonly inputs: readonly PlotInput[] };

/**
 * argv of bin/bench-plot (without node and script). An input with "=" is LABEL=FILE, split at the
 * first "=" (a file whose name holds "=" is given as LABEL=FILE).
 */
export function parsePlotArgs(argv: readonly string[]): Result<PlotCommand> {
  let out: string | undefined;
  let title = DEFAULT_PLOT_TITLE;
  let xScale: XScale = 'log';
  const inputs: PlotInput[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => argv[++i];
    if (a === '-h' || a === '--help') return ok({ command: 'help' });
    if (a === '--out' || a === '--title' || a === '--x') {
      const v = value();
      if (v === undefined) return fail('INVALID_ARGUMENT', `${a} needs a value`);
      if (a === '--out') out = v;
      else if (a === '--title') title = v;
      else if (v === 'log' || v === 'linear') xScale = v;
      else return fail('INVALID_ARGUMENT', `--x "${v}": use log or linear`);
    } else if (a.startsWith('-')) {
      return fail('INVALID_ARGUMENT', `unknown option "${a}"`);
    } else {
      const eq = a.indexOf('=');
      if (eq === 0 || eq === a.length - 1) return fail('INVALID_ARGUMENT', `"${a}": use LABEL=FILE with both parts, or just FILE`);
      inputs.push(eq > 0 ? { label: a.slice(0, eq), file: a.slice(eq + 1) } : { label: undefined, file: a });
    }
  }
  if (out === undefined) return fail('INVALID_ARGUMENT', '--out FILE.svg is required');
  if (inputs.length === 0) return fail('INVALID_ARGUMENT', 'give at least one bench report (JSON of bin/bench --json)');
  if (inputs.length > PLOT_LIMITS.seriesMax) return fail('INVALID_ARGUMENT', `${inputs.length} reports, at most ${PLOT_LIMITS.seriesMax} are plotted`);
  return ok({ command: 'plot', out, title, xScale, inputs });
}

import { expect } from 'chai';
import {
  defaultLabel,
  describeRuns,
  disambiguate,
  formatTick,
  linearTicks,
  log2Ticks,
  parsePlotArgs,
  renderPlot,
  seriesFromReport,
  type PlotOptions,
  type PlotSeries,
} from '../../src/bench/plot.js';

// Two small synthetic `bin/bench --json` reports: only the fields the plot reads, plus a few it ignores.
function report(setup: Record<string, unknown>, points: [c: number, perS: number, p99: number | null][]): unknown {
  return {
    startedAt: '2025-01-02T03:04:05.000Z',
    machine: { nproc: 2, cpuModel: 'test cpu', memTotal: '4 GB', node: 'v22.0.0', os: 'linux' },
    setup: { launched: true, discovery: 'static', banks: ['BankA', 'BankB'], accountsPerBank: 1000, historyRows: 0, ...setup },
    points: points.map(([concurrency, committedPerS, p99Ms]) => ({
      concurrency, durationS: 3, warmupS: 1, committedPerS, committed: Math.round(committedPerS * 3),
      latency: { p50Ms: 1, p95Ms: 2, p99Ms, maxMs: 9 },
    })),
  };
}

const SQLITE = report({ store: 'sqlite', gateways: 1 }, [[1, 210, 6.5], [8, 1200, 12], [32, 2000, 32.4]]);
const POSTGRES = report({ store: 'postgres', gateways: 2 }, [[32, 900, 80], [1, 90, 15], [8, 500, null]]);
const OPTIONS: PlotOptions = { title: 'bench & <plot>', subtitle: '2 cores', xScale: 'log' };

function series(r: unknown, label?: string): PlotSeries {
  const s = seriesFromReport(r, 'test.json', label);
  if (!s.ok) throw new Error(s.message);
  return s.value;
}

function svgOf(s: readonly PlotSeries[], o: PlotOptions = OPTIONS): string {
  const r = renderPlot(s, o);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

/** A small XML well-formedness check: every tag closed in order, attributes quoted, no stray "<" or "&". */
function checkWellFormed(xml: string): void {
  const stack: string[] = [];
  const text = xml.replace(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/g, (_m, close: string, name: string, _attrs: string, self: string) => {
    if (close) {
      const open = stack.pop();
      expect(open, `</${name}> closes <${open}>`).to.equal(name);
    } else if (!self) {
      stack.push(name);
    }
    return '';
  });
  expect(stack, 'unclosed tags').to.deep.equal([]);
  expect(text, 'left-over markup').not.to.match(/[<>]/);
  expect(text.replace(/&(amp|lt|gt|quot|apos);/g, ''), 'bare &').not.to.include('&');
}

describe('bench-plot: the SVG renderer', () => {
  it('draws one line per configuration in each panel, with axis titles, ticks and a legend', () => {
    const svg = svgOf([series(SQLITE), series(POSTGRES)]);
    checkWellFormed(svg);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).to.equal(true);
    const panels = svg.split('<g class="panel"').slice(1);
    expect(panels.map((p) => /data-panel="(\w+)"/.exec(p)![1])).to.deep.equal(['throughput', 'p99']);
    for (const p of panels) expect(p.match(/<polyline /g)).to.have.length(2);
    expect(svg.match(/<polyline /g)).to.have.length(4);
    expect(svg).to.include('committed transfers/s');
    expect(svg).to.include('p99 latency (ms)');
    expect(svg).to.include('concurrency C (client sessions, log scale)');
    // x ticks are powers of two over 1..32; y ticks end at a nice number above the maximum.
    for (const t of ['1', '2', '4', '8', '16', '32']) expect(svg).to.include(`text-anchor="middle">${t}</text>`);
    expect(svg).to.include('>2,000</text>');
    const legend = svg.slice(svg.indexOf('<g class="legend"'));
    expect(legend).to.include('>sqlite, 1 gateway, 2 banks</text>');
    expect(legend).to.include('>postgres, 2 gateways, 2 banks</text>');
    expect(svg).to.include('<title>bench &amp; &lt;plot&gt;</title>');
  });

  it('orders points by C and leaves out a latency that is null (nothing committed)', () => {
    const pg = series(POSTGRES);
    expect(pg.points.map((p) => p.concurrency)).to.deep.equal([1, 8, 32]);
    const svg = svgOf([pg]);
    const [throughput, p99] = svg.split('<g class="panel"').slice(1);
    const pointsOf = (panel: string) => /points="([^"]*)"/.exec(panel)![1]!.split(' ').length;
    expect(pointsOf(throughput!)).to.equal(3);
    expect(pointsOf(p99!)).to.equal(2);
  });

  it('takes a label=file name, escapes it, and tells equal labels apart by their source', () => {
    const svg = svgOf([series(SQLITE, 'before <refactor> & after')]);
    checkWellFormed(svg);
    expect(svg).to.include('>before &lt;refactor&gt; &amp; after</text>');
    const twice = disambiguate([series(SQLITE), series(SQLITE)], ['a.json', 'b.json']);
    expect(twice.map((s) => s.label)).to.deep.equal(['sqlite, 1 gateway, 2 banks (a.json)', 'sqlite, 1 gateway, 2 banks (b.json)']);
  });

  it('draws a linear C axis on request', () => {
    const svg = svgOf([series(SQLITE)], { ...OPTIONS, xScale: 'linear' });
    checkWellFormed(svg);
    expect(svg).to.include('concurrency C (client sessions)</text>');
    expect(svg).to.include('text-anchor="middle">0</text>');
  });

  it('rejects a report without points, and other malformed input, with a message naming the file', () => {
    const noPoints = seriesFromReport(report({ store: 'sqlite', gateways: 1 }, []), 'empty.json');
    expect(noPoints.ok).to.equal(false);
    expect(noPoints.ok ? '' : noPoints.message).to.equal('empty.json: the report has no points (nothing was measured), nothing to plot');
    const notReport = seriesFromReport({ rows: [] }, 'other.json');
    expect(notReport.ok ? '' : notReport.message).to.match(/^other\.json: not a bin\/bench --json report/);
    const badC = seriesFromReport({ points: [{ concurrency: 0, committedPerS: 1, latency: { p99Ms: 1 } }] }, 'c.json');
    expect(badC.ok ? '' : badC.message).to.equal('c.json: point 1: "concurrency" must be a positive integer');
    const empty = renderPlot([{ label: 'x', points: [] }], OPTIONS);
    expect(empty.ok ? '' : empty.message).to.equal('series "x" has no points, nothing to plot');
    const none = renderPlot([], OPTIONS);
    expect(none.ok).to.equal(false);
  });

  it('names a configuration from its setup, also for reports older than setup.store', () => {
    expect(defaultLabel({ store: 'postgres', gateways: 3, banks: ['A', 'B', 'C'] })).to.equal('postgres, 3 gateways, 3 banks');
    expect(defaultLabel({ launched: true, banks: ['A', 'B'], historyRows: 1000 })).to.equal('2 banks, 1000 history rows');
    expect(defaultLabel({ launched: false, gateways: 1, banks: ['A'] })).to.equal('targeted, 1 gateway, 1 bank');
  });

  it('computes ticks', () => {
    expect(linearTicks(2043)).to.deep.equal([0, 500, 1000, 1500, 2000, 2500]);
    expect(linearTicks(32.4)).to.deep.equal([0, 10, 20, 30, 40]);
    expect(linearTicks(0)).to.deep.equal([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(log2Ticks(1, 128)).to.deep.equal([1, 2, 4, 8, 16, 32, 64, 128]);
    expect(log2Ticks(32, 32)).to.deep.equal([16, 32, 64]);
    expect(log2Ticks(3, 100)).to.deep.equal([2, 4, 8, 16, 32, 64, 128]);
    expect(formatTick(12500)).to.equal('12,500');
    expect(formatTick(0.30000000000000004)).to.equal('0.3');
  });
});

describe('bench-plot: arguments', () => {
  it('reads --out, --title, --x and LABEL=FILE inputs', () => {
    const r = parsePlotArgs(['--out', 'docs/bench.svg', '--x', 'linear', 'a.json', 'postgres, 2 gateways=b.json']);
    expect(r.ok && r.value).to.deep.include({ command: 'plot', out: 'docs/bench.svg', xScale: 'linear' });
    expect(r.ok && r.value.command === 'plot' && r.value.inputs).to.deep.equal([
      { label: undefined, file: 'a.json' },
      { label: 'postgres, 2 gateways', file: 'b.json' },
    ]);
  });

  it('refuses a missing --out, no inputs, an unknown option and a half LABEL=FILE', () => {
    const message = (argv: string[]) => {
      const r = parsePlotArgs(argv);
      expect(r.ok, argv.join(' ')).to.equal(false);
      return r.ok ? '' : r.message;
    };
    expect(message(['a.json'])).to.include('--out');
    expect(message(['--out', 'x.svg'])).to.include('at least one');
    expect(message(['--out', 'x.svg', '--y', 'a.json'])).to.include('unknown option');
    expect(message(['--out', 'x.svg', '=a.json'])).to.include('LABEL=FILE');
    expect(message(['--out', 'x.svg', '--x', 'cubic', 'a.json'])).to.include('log or linear');
  });
});

describe('bench-plot: the subtitle', () => {
  it('gives the machine, the window, the load average over all reports and their dates', () => {
    const withLoad = (r: unknown, load: number, date: string) => {
      const o = JSON.parse(JSON.stringify(r)) as { startedAt: string; points: { loadAvg1: number }[] };
      o.startedAt = date;
      for (const p of o.points) p.loadAvg1 = load;
      return o;
    };
    expect(describeRuns([withLoad(SQLITE, 0.5, '2025-01-02T00:00:00Z'), withLoad(POSTGRES, 2.25, '2025-01-03T00:00:00Z')]))
      .to.equal('2 cores, Node v22.0.0; 3 s measured per C after 1 s warm-up; load average 0.5-2.3; 2025-01-02 to 2025-01-03');
    expect(describeRuns([{}])).to.equal('');
  });
});

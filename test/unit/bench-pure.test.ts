import { expect } from 'chai';
import { moduleOf, summarizeProfile, type CpuProfile } from '../../src/bench/cpuprofile.js';
import {
  bankName,
  parseAmountDist,
  parseBenchArgs,
  pickRecipient,
  rng,
  sampleAmount,
  sessionParty,
  type BenchOptions,
} from '../../src/bench/options.js';
import { machineUse, parseProcStat, parseStatCpuSeconds } from '../../src/bench/proc.js';
import { markdownTable, writeDocsSection } from '../../src/bench/report.js';
import { classify, mergeWindows, percentile, summarizeLatencies } from '../../src/bench/stats.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function options(argv: string[]): BenchOptions {
  const r = parseBenchArgs(argv);
  if (!r.ok) throw new Error(r.message);
  if (r.value.command !== 'run') throw new Error(`not a run: ${r.value.command}`);
  return r.value.options;
}

function refused(argv: string[]): string {
  const r = parseBenchArgs(argv);
  expect(r.ok, argv.join(' ')).to.equal(false);
  return r.ok ? '' : r.message;
}

describe('bench: percentiles and summaries', () => {
  it('uses the nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).to.equal(50);
    expect(percentile(xs, 95)).to.equal(95);
    expect(percentile(xs, 99)).to.equal(99);
    expect(percentile(xs, 100)).to.equal(100);
    expect(percentile(xs, 0)).to.equal(1);
    expect(percentile([7], 99)).to.equal(7);
    expect(percentile([1, 2, 3], 50)).to.equal(2);
    expect(Number.isNaN(percentile([], 50))).to.equal(true);
    expect(() => percentile(xs, 101)).to.throw(/not in 0..100/);
  });

  it('summarizes unsorted samples', () => {
    const s = summarizeLatencies([5, 1, 4, 2, 3]);
    expect(s).to.deep.include({ count: 5, p50Ms: 3, p95Ms: 5, p99Ms: 5, maxMs: 5, meanMs: 3 });
    const empty = summarizeLatencies([]);
    expect(empty.count).to.equal(0);
    expect(Number.isNaN(empty.p99Ms)).to.equal(true);
  });

  it('classifies outcomes and merges worker windows', () => {
    expect(classify(undefined)).to.equal('committed');
    expect(classify('INSUFFICIENT_FUNDS')).to.equal('aborted');
    expect(classify('PREPARE_TIMEOUT')).to.equal('aborted');
    expect(classify('OVERLOADED')).to.equal('failed');
    expect(classify('DEADLINE_EXCEEDED')).to.equal('failed');
    const m = mergeWindows([
      { committed: 2, aborted: { INSUFFICIENT_FUNDS: 1 }, failed: {}, latenciesMs: [1, 2] },
      { committed: 1, aborted: { INSUFFICIENT_FUNDS: 2 }, failed: { OVERLOADED: 3 }, latenciesMs: [3] },
    ]);
    expect(m).to.deep.equal({ committed: 3, aborted: { INSUFFICIENT_FUNDS: 3 }, failed: { OVERLOADED: 3 }, latenciesMs: [1, 2, 3] });
  });
});

describe('bench: options', () => {
  it('has short defaults', () => {
    const o = options([]);
    expect(o).to.deep.include({ concurrency: 32, durationS: 10, warmupS: 3, banks: 2, accounts: 1000, workers: 1, channels: 1, sameBankShare: 0, json: false, discovery: 'consul' });
    expect(o.amount).to.deep.equal({ kind: 'uniform', minMinor: 1n, maxMinor: 100n });
    expect(o.sweep).to.equal(undefined);
    expect(o.targetConfig).to.equal(undefined);
  });

  it('parses every option', () => {
    const o = options(['-c', '8', '-d', '2', '-w', '0', '--banks', '3', '--accounts', '50', '--same-bank-share', '0.25',
      '--amount', 'fixed:7', '--seed', '42', '--workers', '2', '--channels', '4', '--json', '--sweep', '1,8',
      '--set', 'logging.level=warn', '--history', '1000', '--label', 'x']);
    expect(o).to.deep.include({ concurrency: 8, durationS: 2, warmupS: 0, banks: 3, accounts: 50, sameBankShare: 0.25, seed: 42, workers: 2, channels: 4, json: true, historyRows: 1000, label: 'x' });
    expect(o.sweep).to.deep.equal([1, 8]);
    expect(options(['--discovery', 'static']).discovery).to.equal('static');
    expect(o.sets).to.deep.equal(['logging.level=warn']);
    expect(o.amount).to.deep.equal({ kind: 'fixed', minor: 7n });
    const t = options(['--config', 'c.json', '--pid', 'gateway=12', '--pid', 'BankA=13']);
    expect(t.targetConfig).to.equal('c.json');
    expect(t.pids).to.deep.equal({ gateway: 12, BankA: 13 });
  });

  it('refuses bad values with the option name', () => {
    expect(refused(['-c', '0'])).to.match(/--concurrency/);
    expect(refused(['-c', '2.5'])).to.match(/--concurrency/);
    expect(refused(['--duration', 'ten'])).to.match(/--duration/);
    expect(refused(['--same-bank-share', '1.5'])).to.match(/same-bank-share/);
    expect(refused(['--amount', 'normal:5'])).to.match(/--amount/);
    expect(refused(['--sweep', '1,x'])).to.match(/--sweep/);
    expect(refused(['--pid', 'gateway'])).to.match(/NAME=PID/);
    expect(refused(['--bogus'])).to.match(/bogus/);
    expect(refused(['--accounts', '2', '--banks', '2', '-c', '5'])).to.match(/need 5 accounts/);
    expect(refused(['--config', 'c.json', '--history', '5'])).to.match(/launched system/);
    expect(refused(['--config', 'c.json', '--discovery', 'static'])).to.match(/launched system/);
    expect(refused(['--discovery', 'dns'])).to.match(/--discovery/);
    expect(refused(['--currency', 'XXX'])).to.match(/currency/);
  });

  it('parses profile-summary and help', () => {
    expect(parseBenchArgs(['profile-summary', 'a.cpuprofile', '--top', '5'])).to.deep.equal({
      ok: true, value: { command: 'profile-summary', files: ['a.cpuprofile'], top: 5, json: false },
    });
    expect(parseBenchArgs(['--help'])).to.deep.equal({ ok: true, value: { command: 'help' } });
    expect(refused(['profile-summary'])).to.match(/at least one/);
  });
});

describe('bench: amount distribution and recipients', () => {
  it('parses and samples amounts within bounds, reproducibly', () => {
    expect(parseAmountDist('fixed:100')).to.deep.equal({ ok: true, value: { kind: 'fixed', minor: 100n } });
    expect(parseAmountDist('uniform:5-5').ok).to.equal(true);
    expect(parseAmountDist('uniform:9-1').ok).to.equal(false);
    expect(parseAmountDist('fixed:0').ok).to.equal(false);
    expect(parseAmountDist('fixed:-3').ok).to.equal(false);
    const d = parseAmountDist('uniform:10-20');
    if (!d.ok) throw new Error(d.message);
    const a = rng(7);
    const seen = new Set<bigint>();
    for (let i = 0; i < 2000; i++) {
      const x = sampleAmount(d.value, a);
      expect(x >= 10n && x <= 20n, String(x)).to.equal(true);
      seen.add(x);
    }
    expect(seen.size).to.equal(11);
    const b1 = rng(7);
    const b2 = rng(7);
    for (let i = 0; i < 10; i++) expect(sampleAmount(d.value, b1)).to.equal(sampleAmount(d.value, b2));
    expect(sampleAmount({ kind: 'fixed', minor: 3n }, a)).to.equal(3n);
  });

  it('never pays the payer and honours the same-bank share', () => {
    const random = rng(1);
    let same = 0;
    const n = 4000;
    for (let i = 0; i < n; i++) {
      const payer = { bank: i % 3, user: i % 5 };
      const to = pickRecipient(payer, 3, 5, 0.3, random);
      expect(to.bank === payer.bank && to.user === payer.user).to.equal(false);
      expect(to.bank).to.be.within(0, 2);
      expect(to.user).to.be.within(0, 4);
      if (to.bank === payer.bank) same++;
    }
    expect(same / n).to.be.within(0.25, 0.35);
    for (let i = 0; i < 100; i++) expect(pickRecipient({ bank: 0, user: 0 }, 2, 10, 0, random).bank).to.equal(1);
    for (let i = 0; i < 100; i++) expect(pickRecipient({ bank: 1, user: 3 }, 1, 10, 0, random).bank).to.equal(1);
    expect(sessionParty(5, 2)).to.deep.equal({ bank: 1, user: 2 });
    expect(bankName(0)).to.equal('BankA');
    expect(bankName(2)).to.equal('BankC');
  });
});

describe('bench: process, profile and docs helpers', () => {
  it('reads utime + stime from /proc/<pid>/stat, even with spaces in the name', () => {
    const stat = '1234 (node (bench) x) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 11 0';
    expect(parseStatCpuSeconds(stat, 100)).to.equal(4);
  });

  it('reads the machine’s busy, idle and stolen time from /proc/stat, and the share busy between two readings', () => {
    // user nice system idle iowait irq softirq steal guest guest_nice
    const from = parseProcStat('cpu  100 0 50 800 10 5 5 30 0 0\ncpu0 50 0 25 400 5 2 3 15 0 0\nintr 1\n');
    expect(from).to.deep.equal({ busy: 160, steal: 30, total: 1000 });
    const to = parseProcStat('cpu  250 0 100 950 10 10 10 70 0 0\n');
    // 210 of the 400 ticks in between were busy, 40 stolen.
    expect(machineUse(from, to)).to.deep.equal({ busyPct: 52.5, stealPct: 10 });
    expect(Number.isNaN(machineUse(undefined, to).busyPct)).to.equal(true);
    expect(() => parseProcStat('intr 1\n')).to.throw(/proc\/stat/);
  });

  it('aggregates a cpuprofile by self time', () => {
    const profile: CpuProfile = {
      startTime: 0,
      endTime: 4000,
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 } },
        { id: 2, callFrame: { functionName: 'run', url: 'file:///r/node_modules/better-sqlite3/lib/x.js', lineNumber: 51 } },
        { id: 3, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
        { id: 4, callFrame: { functionName: 'step', url: 'file:///r/src/coordinator/step.ts', lineNumber: 9 } },
      ],
      samples: [2, 2, 3, 4, 2],
      timeDeltas: [0, 1000, 1000, 1000, 1000],
    };
    const s = summarizeProfile(profile, 10);
    expect(s.totalMs).to.equal(4);
    expect(s.idlePct).to.equal(25);
    expect(s.functions[0]).to.deep.equal({ key: 'run better-sqlite3:52', ms: 2, pct: (2 / 3) * 100 });
    expect(s.modules.map((m) => m.key)).to.deep.equal(['better-sqlite3', 'src/coordinator/step.ts']);
    expect(moduleOf('file:///x/node_modules/@grpc/grpc-js/build/a.js')).to.equal('@grpc/grpc-js');
    expect(moduleOf('node:internal/streams/x')).to.equal('node:internal');
  });

  it('replaces a labelled section of a markdown file and keeps the rest', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-docs-')), 'b.md');
    fs.writeFileSync(file, '# Benchmarks\n\nintro\n');
    writeDocsSection(file, 'a', '<!-- bench:a:start -->\nA1\n<!-- bench:a:end -->');
    writeDocsSection(file, 'b', '<!-- bench:b:start -->\nB1\n<!-- bench:b:end -->');
    writeDocsSection(file, 'a', '<!-- bench:a:start -->\nA2\n<!-- bench:a:end -->');
    const text = fs.readFileSync(file, 'utf8');
    expect(text).to.match(/^# Benchmarks\n\nintro\n/);
    expect(text).to.contain('A2').and.contain('B1').and.not.contain('A1');
    expect(text.indexOf('A2')).to.be.lessThan(text.indexOf('B1'));
    expect(markdownTable([['C', 'x/s'], ['1', '2']])).to.equal('| C | x/s |\n|---|---:|\n| 1 | 2 |');
    fs.rmSync(path.dirname(file), { recursive: true });
  });
});

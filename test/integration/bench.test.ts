import { execFile } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from '../helpers/processes.js';

// Smoke test of the benchmark command: it launches its own system (2 banks, bulk-seeded accounts,
// gateway, mutual TLS, a Consul dev agent for discovery: the default), drives 2 sessions for 2 s and reports JSON. Only outcomes are checked,
// never speed.

interface Report {
  setup: { banks: string[]; accountsPerBank: number; discovery: string };
  points: {
    concurrency: number;
    committed: number;
    failedTotal: number;
    latency: { count: number; p50Ms: number; maxMs: number };
    cpu: { name: string; seconds: number }[];
    conservation: { conserved: boolean; startMinor: string; endMinor: string; heldMinor: string };
  }[];
}

describe('bin/bench (smoke)', function () {
  this.timeout(90_000);

  it('drives transfers, reports JSON and finds money conserved', async () => {
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      execFile(path.join(ROOT, 'bin/bench'), ['-c', '2', '-d', '2', '-w', '1', '--accounts', '20', '--seed', '3', '--json'],
        { cwd: ROOT, timeout: 80_000, maxBuffer: 16 * 2 ** 20 },
        (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve({ stdout: out, stderr: errOut })));
    });
    const report = JSON.parse(stdout) as Report;
    expect(report.setup.banks).to.deep.equal(['BankA', 'BankB']);
    expect(report.setup.accountsPerBank).to.equal(20);
    expect(report.points).to.have.length(1);
    const p = report.points[0]!;
    expect(p.concurrency).to.equal(2);
    expect(p.committed).to.be.greaterThan(0);
    expect(p.failedTotal).to.equal(0);
    expect(p.latency.count).to.equal(p.committed);
    expect(p.latency.p50Ms).to.be.greaterThan(0).and.at.most(p.latency.maxMs);
    expect(report.setup.discovery).to.equal('consul');
    expect(p.cpu.map((c) => c.name)).to.include.members(['gateway', 'BankA', 'BankB', 'consul', 'loadgen']);
    expect(p.conservation).to.deep.include({ conserved: true, heldMinor: '0' });
    // 2 banks x 20 accounts x 1,000,000.00 EUR.
    expect(p.conservation.startMinor).to.equal('4000000000');
    expect(p.conservation.endMinor).to.equal(p.conservation.startMinor);
    // The progress line went to stderr.
    expect(stderr).to.match(/C=2 (warm-up|measure)/);
  });
});

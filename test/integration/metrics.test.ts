import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Status } from 'nice-grpc';
import { TransferStatus } from '../../src/gen/payments/v1/gateway.js';
import { expectFailure } from '../helpers/expect-failure.js';
import { bearer, Cluster, eventually, untilRoutable } from '../helpers/cluster.js';
import { ConsulAgent } from '../helpers/consul.js';
import { PostgresServer } from '../helpers/postgres.js';

// The Prometheus endpoints of a running system (gateway + two banks as processes, static
// discovery): each node serves GET /metrics on an ephemeral loopback port (metricsPort 0), and its
// counters move with a transfer; the endpoint goes away when its node stops. Then the paths static
// discovery and SQLite do not take: a gateway over PostgreSQL with Consul discovery.

const BANKS = ['BankA', 'BankB'] as const;

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of a text-format scrape (comments skipped). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** Sum of the samples named `name` whose labels include `labels`. */
function total(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

async function scrape(port: number): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).to.equal(200);
  expect(res.headers.get('content-type')).to.match(/^text\/plain/);
  return parseMetrics(await res.text());
}

describe('metrics: a Prometheus endpoint on every node', function () {
  this.timeout(60_000);
  let cluster: Cluster;
  const ports = new Map<string, number>();

  before(async () => {
    cluster = await Cluster.create({ banks: [...BANKS], gateway: { metricsPort: 0 } });
    for (const b of BANKS) cluster.config.banks[b].metricsPort = 0;
    cluster.writeConfig();
    await cluster.addUser('BankA', 'alice', 'EUR', '100.00');
    await cluster.addUser('BankB', 'bob', 'EUR', '100.00');
    await cluster.startAll();
    for (const b of BANKS) ports.set(b, cluster.banks.get(b)!.metricsPort!);
    ports.set('gateway', cluster.gateway!.metricsPort!);
  });

  after(async () => {
    await cluster?.close();
  });

  it('announces an ephemeral metrics port per node, answers GET /metrics only', async () => {
    expect([...ports.values()]).to.have.length(3);
    for (const port of ports.values()) expect(port).to.be.a('number').and.greaterThan(0);
    expect(new Set(ports.values()).size).to.equal(3);
    const other = await fetch(`http://127.0.0.1:${ports.get('gateway')}/other`);
    expect(other.status).to.equal(404);
    await other.text();
    const post = await fetch(`http://127.0.0.1:${ports.get('gateway')}/metrics`, { method: 'POST' });
    expect(post.status).to.equal(405);
    await post.text();
    // Each node's own registry, labelled with its name.
    for (const [node, port] of ports) {
      const samples = await scrape(port);
      expect(samples.find((s) => s.name === 'process_cpu_user_seconds_total')?.labels.node).to.equal(node);
    }
  });

  it('moves the counters of every node with a transfer', async () => {
    const before = new Map<string, Sample[]>();
    for (const [node, port] of ports) before.set(node, await scrape(port));
    const gwBefore = before.get('gateway')!;

    // A refused login, a good one, a cross-bank transfer.
    await expectFailure(cluster.gatewayClient().login({ bank: 'BankA', username: 'alice', password: 'wrong' }),
      Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
    const { metadata } = await cluster.login('BankA', 'alice');
    const res = await cluster.gatewayClient().createTransfer(
      { idempotencyKey: randomUUID(), toBank: 'BankB', toUsername: 'bob', amountMinor: 1250n, currency: 'EUR' }, { metadata });
    expect(res.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);

    const rpc = (method: string, code = 'OK') => ({ grpc_method: method, grpc_code: code });
    const moved = (samples: readonly Sample[], old: readonly Sample[], name: string, labels: Record<string, string> = {}) =>
      total(samples, name, labels) - total(old, name, labels);

    // Gateway: one committed transfer, its phases timed, the RPCs used, its log's group commits.
    // Phase 2 may still be finishing after the reply: wait for it (bounded), no sleep.
    let gw: Sample[] = [];
    await eventually(async (note) => {
      gw = await scrape(ports.get('gateway')!);
      const phase2 = moved(gw, gwBefore, 'payments_transfer_phase2_duration_seconds_count', { outcome: 'committed' });
      const unfinished = total(gw, 'payments_transfers_unfinished');
      note(`phase-2 observations +${phase2}, unfinished ${unfinished}`);
      return phase2 === 1 && unfinished === 0;
    }, 20_000, 'phase 2 of the transfer observed at the gateway');
    expect(moved(gw, gwBefore, 'payments_transfers_total', { outcome: 'committed', reason: 'NONE' })).to.equal(1);
    expect(moved(gw, gwBefore, 'payments_transfers_total', { outcome: 'aborted' })).to.equal(0);
    expect(moved(gw, gwBefore, 'payments_transfer_prepare_duration_seconds_count', { outcome: 'committed' })).to.equal(1);
    expect(moved(gw, gwBefore, 'grpc_server_handled_total', rpc('CreateTransfer'))).to.equal(1);
    expect(moved(gw, gwBefore, 'grpc_server_handled_total', rpc('Login'))).to.equal(1);
    expect(moved(gw, gwBefore, 'grpc_server_handled_total', rpc('Login', 'UNAUTHENTICATED'))).to.equal(1);
    expect(moved(gw, gwBefore, 'grpc_server_started_total', { grpc_method: 'CreateTransfer' })).to.equal(1);
    expect(moved(gw, gwBefore, 'grpc_server_handling_seconds_count', rpc('CreateTransfer'))).to.equal(1);
    expect(moved(gw, gwBefore, 'payments_login_failures_total')).to.equal(1);
    expect(moved(gw, gwBefore, 'payments_login_throttled_total')).to.equal(0);
    // At least the begin and the decision record were group-committed.
    expect(moved(gw, gwBefore, 'payments_group_commit_batch_size_count')).to.be.greaterThan(0);
    expect(moved(gw, gwBefore, 'payments_group_commit_batch_size_sum')).to.be.at.least(2);
    expect(moved(gw, gwBefore, 'payments_group_commit_duration_seconds_count', { result: 'ok' })).to.be.greaterThan(0);

    // Banks: the 2PC calls of the transfer (messages on the gateway's BatchStream: a prepare
    // batch and a commit batch), their group commits, nothing left in doubt.
    for (const bank of BANKS) {
      const old = before.get(bank)!;
      let now: Sample[] = [];
      await eventually(async (note) => {
        now = await scrape(ports.get(bank)!);
        const messages = moved(now, old, 'grpc_server_msg_received_total', { grpc_method: 'BatchStream' });
        const answers = moved(now, old, 'grpc_server_msg_sent_total', { grpc_method: 'BatchStream' });
        const commits = moved(now, old, 'payments_bank_operations_total', { op: 'commit' });
        const inDoubt = total(now, 'payments_bank_in_doubt_legs');
        note(`batch stream messages +${messages} in, +${answers} out, commits +${commits}, in-doubt legs ${inDoubt}`);
        return messages >= 2 && answers >= 2 && commits >= 1 && inDoubt === 0;
      }, 20_000, `${bank}: prepare and commit batches answered, the commit performed, no leg in doubt`);
      // A leg of the cross-bank transfer was prepared here (a repeat after a slow answer counts
      // again), nothing aborted.
      expect(moved(now, old, 'payments_bank_operations_total', { op: 'prepare' }), `${bank} prepared legs`).to.be.at.least(1);
      expect(moved(now, old, 'payments_bank_operations_total', { op: 'abort' }), `${bank} aborts`).to.equal(0);
      expect(moved(now, old, 'payments_group_commit_batch_size_count'), `${bank} group commits`).to.be.at.least(2);
      expect(moved(now, old, 'payments_group_commit_duration_seconds_count'), `${bank} group commit time`).to.be.at.least(2);
    }
    // alice's login asked BankA to check her password (the refused one too).
    expect(moved(await scrape(ports.get('BankA')!), before.get('BankA')!, 'grpc_server_handled_total', { grpc_method: 'Authenticate' }))
      .to.be.at.least(2);
  });

  it('closes the endpoint when its node stops', async () => {
    await cluster.stopGateway();
    const refused = await fetch(`http://127.0.0.1:${ports.get('gateway')}/metrics`).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused, 'a scrape after the gateway stopped').to.be.instanceOf(Error);
    // The banks still answer.
    expect(await scrape(ports.get('BankA')!)).to.have.length.greaterThan(0);
  });
});

describe('metrics: a gateway over PostgreSQL with Consul discovery', function () {
  this.timeout(120_000);
  let pg: PostgresServer;
  let agent: ConsulAgent;
  let cluster: Cluster;
  let port: number;

  before(async () => {
    pg = await PostgresServer.start();
    cluster = await Cluster.create({
      banks: [...BANKS],
      gatewayInstances: ['g1'],
      postgres: { host: '127.0.0.1', port: pg.port, database: 'payments', user: 'payments' },
      gateway: { metricsPort: 0 },
      consul: {},
    });
    agent = await ConsulAgent.start(cluster.certsDir);
    cluster.config.consul = { fallbackToStatic: false, ...agent.nodeSettings() };
    cluster.writeConfig();
    await cluster.reservePorts();
    await cluster.addUser('BankA', 'alice', 'EUR', '100.00');
    await cluster.addUser('BankB', 'bob', 'EUR', '100.00');
    for (const b of BANKS) await cluster.startBank(b);
    port = (await cluster.startGatewayInstance('g1')).metricsPort!;
  });

  after(async () => {
    await cluster?.close();
    await agent?.close();
    await pg?.stop();
  });

  const watchUp = (samples: readonly Sample[]) => samples.filter((s) => s.name === 'payments_consul_watch_up');

  it('times the PostgreSQL log\'s group commits of a transfer', async () => {
    const before = await scrape(port);
    const login = await cluster.instanceClient('g1').login({ bank: 'BankA', username: 'alice', password: cluster.passwordOf('BankA', 'alice') });
    // The gateway learns of each bank from Consul's health checks: until it has seen BankB passing,
    // a transfer aborts BANK_UNAVAILABLE with nothing moved (its key keeps that outcome: a retry is
    // a new key). The committed count below still moves by exactly one.
    const res = await untilRoutable(() => cluster.instanceClient('g1').createTransfer(
      { idempotencyKey: randomUUID(), toBank: 'BankB', toUsername: 'bob', amountMinor: 700n, currency: 'EUR' },
      { metadata: bearer(login.accessToken) }), 'g1 to accept a transfer to BankB');
    const status = res.transfer?.status;
    expect(status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    let now: Sample[] = [];
    await eventually(async (note) => {
      now = await scrape(port);
      const unfinished = total(now, 'payments_transfers_unfinished');
      note(`unfinished ${unfinished}`);
      return unfinished === 0 && total(now, 'payments_transfers_total', { outcome: 'committed' }) - total(before, 'payments_transfers_total', { outcome: 'committed' }) === 1;
    }, 20_000, 'the transfer finished at g1');
    const moved = (name: string, labels: Record<string, string> = {}) => total(now, name, labels) - total(before, name, labels);
    // Begin and decision at least, each in a PostgreSQL transaction of its own or shared.
    expect(moved('payments_group_commit_batch_size_sum')).to.be.at.least(2);
    expect(moved('payments_group_commit_duration_seconds_count', { result: 'ok' })).to.be.greaterThan(0);
    expect(moved('payments_group_commit_duration_seconds_count', { result: 'failed' })).to.equal(0);
    expect(moved('payments_group_commit_duration_seconds_sum')).to.be.greaterThan(0);
  });

  it('says whether its Consul watches get answers: 1, 0 while the agent is down, 1 again', async () => {
    const up = watchUp(await scrape(port));
    expect(up.map((s) => s.labels.service), 'watched services').to.include('payments-bank');
    expect(up.every((s) => s.value === 1), JSON.stringify(up)).to.equal(true);
    await agent.stop('SIGKILL');
    await eventually(async (note) => {
      const now = watchUp(await scrape(port));
      note(JSON.stringify(now));
      return now.length > 0 && now.every((s) => s.value === 0);
    }, 30_000, 'every watch reported down');
    await agent.launch();
    await eventually(async (note) => {
      const now = watchUp(await scrape(port));
      note(JSON.stringify(now));
      return now.length > 0 && now.every((s) => s.value === 1);
    }, 30_000, 'every watch reported up again');
  });
});

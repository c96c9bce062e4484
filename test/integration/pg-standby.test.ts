import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Metadata } from 'nice-grpc';
import { FAILPOINTS_ENV } from '../../src/failpoints/index.js';
import { bearer, Cluster, eventually } from '../helpers/cluster.js';
import { balances, leftovers, untilCrash } from '../helpers/outcomes.js';
import { PostgresServer } from '../helpers/postgres.js';

// The database itself fails: a gateway over a PostgreSQL primary with one synchronous standby
// commits transfers and dies right after deciding one more; the primary is SIGKILLed and its data
// folder deleted; the standby is promoted and the gateway is pointed at it (the documented
// reconfiguration) -> every transfer decided before the crash keeps its decision and finishes.

const LEASE_MS = 2000;
const AMOUNTS = [100n, 200n, 300n, 400n, 500n];
const DECIDED_THEN_CRASHED = 600n;

describe('PostgreSQL primary lost, synchronous standby promoted', function () {
  this.timeout(120_000);
  let primary: PostgresServer;
  let standby: PostgresServer;
  let cluster: Cluster;

  before(async () => {
    primary = await PostgresServer.start();
    standby = await primary.startStandby();
    cluster = await Cluster.create({
      banks: ['BankA', 'BankB'],
      gatewayInstances: ['g1'],
      postgres: { host: '127.0.0.1', port: primary.port, database: 'payments', user: 'payments' },
      gateway: { leaseMs: LEASE_MS, leaseRenewIntervalMs: 500, takeoverIntervalMs: 250 },
      bank: { inDoubtQueryAfterMs: 500 },
    });
    await cluster.reservePorts();
    await cluster.addUser('BankA', 'alice', 'EUR', '1000.00');
    await cluster.addUser('BankB', 'bob', 'EUR', '1000.00');
    await cluster.startBank('BankA');
    await cluster.startBank('BankB');
    await cluster.startGatewayInstance('g1');
  });
  after(async () => {
    await cluster?.close();
    await standby?.stop();
    await primary?.stop();
  });

  it('keeps every decision made before the crash, and finishes the one in flight', async () => {
    const g1 = () => cluster.instanceClient('g1');
    const login = await g1().login({ bank: 'BankA', username: 'alice', password: cluster.passwordOf('BankA', 'alice') });
    const metadata: Metadata = bearer(login.accessToken);
    const pay = (key: string, amountMinor: bigint) =>
      g1().createTransfer({ idempotencyKey: key, toBank: 'BankB', toUsername: 'bob', amountMinor, currency: 'EUR' }, { metadata });
    const start = await balances(cluster);
    const done = new Map<string, string>();
    for (const amount of AMOUNTS) {
      const key = randomUUID();
      done.set(key, (await pay(key, amount)).transfer!.transactionId);
    }
    // One more, decided (durable at the primary and, synchronously, at the standby), then g1 dies.
    await cluster.stopGatewayInstance('g1');
    const armed = await cluster.startGatewayInstance('g1', { [FAILPOINTS_ENV]: 'gateway.after_decision_persisted' });
    const inFlight = randomUUID();
    const crashed = await untilCrash(armed, () => pay(inFlight, DECIDED_THEN_CRASHED));
    expect(crashed.exit, crashed.story).to.equal('SIGKILL');

    // The primary is lost with its disk.
    await primary.kill();
    fs.rmSync(path.join(primary.dataDir, 'data'), { recursive: true, force: true });
    await standby.promote();
    // The documented reconfiguration: the gateways are pointed at the promoted standby.
    cluster.config.gateway.postgres.port = standby.port;
    cluster.writeConfig();
    await cluster.startGatewayInstance('g1');

    // The decided transfer is finished (g1 takes its own lapsed lease over), nothing is left.
    await eventually(async (note) => {
      const left = await leftovers(cluster);
      note(left.join(', '));
      return left.length === 0;
    }, LEASE_MS + 20_000, 'the decided transfer to finish on the promoted standby');
    const replay = await pay(inFlight, DECIDED_THEN_CRASHED);
    expect(replay.transfer?.status).to.equal(2); // COMMITTED
    for (const [key, txId] of done) {
      const got = await g1().getTransfer({ idempotencyKey: key }, { metadata });
      expect(got.transfer?.transactionId, key).to.equal(txId);
      expect(got.transfer?.status).to.equal(2);
    }
    const end = await balances(cluster);
    const moved = AMOUNTS.reduce((a, b) => a + b, 0n) + DECIDED_THEN_CRASHED;
    expect(end.balanceMinor).to.equal(start.balanceMinor);
    expect(end.heldMinor).to.equal(0n);
    expect(end.byUser.get('bob@BankB')).to.equal(start.byUser.get('bob@BankB')! + moved);
  });
});

import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { Status, type Metadata } from 'nice-grpc';
import { publishTrust, readTrust, trustKeys } from '../../src/discovery/consul-trust.js';
import { resolveGatewayAddress } from '../../src/discovery/create.js';
import { ConfigSchema } from '../../src/config/schema.js';
import { verifyWithJwks } from '../../src/gateway/tokens.js';
import { TransferStatus } from '../../src/gen/payments/v1/gateway.js';
import { expectFailure } from '../helpers/expect-failure.js';
import { gatewayLog, nodeLog } from '../helpers/logs.js';
import { Cluster, eventually, untilRoutable } from '../helpers/cluster.js';
import { ConsulAgent, waitFor } from '../helpers/consul.js';
import { runBin } from '../helpers/processes.js';

// The system against a real Consul dev agent started on free ports: registration with gRPC health
// checks over mutual TLS, discovery by blocking queries, trust material in KV, key rotation, and
// Consul itself going away mid-run. Timings are printed (not asserted tightly): they are what
// the "within a few seconds" means on this machine.

const BANK_SERVICE = 'payments-bank';
const GATEWAY_SERVICE = 'payments-gateway';

describe('consul: registration, health, discovery and trust with a real agent', function () {
  this.timeout(120_000);
  let agent: ConsulAgent;
  let cluster: Cluster;
  let alice: Metadata;
  let aliceToken: string;

  const gw = () => cluster.gatewayClient();
  const transfer = (to: [string, string], amountMinor: bigint, key: string = randomUUID()) =>
    gw().createTransfer({ idempotencyKey: key, toBank: to[0], toUsername: to[1], amountMinor, currency: 'EUR' }, { metadata: alice });
  // One service id per gateway instance (gateway.instanceId, default g1).
  const gatewayId = () => `${GATEWAY_SERVICE}-g1`;
  const balance = async (bank: string, user: string) => (await cluster.balanceOf(bank, user)).balanceMinor;

  before(async () => {
    cluster = await Cluster.create({ banks: ['BankA', 'BankB', 'BankC'], gateway: { prepareTimeoutMs: 5000 }, consul: {} });
    agent = await ConsulAgent.start(cluster.certsDir);
    cluster.config.consul = { fallbackToStatic: false, ...agent.nodeSettings() };
    cluster.writeConfig();
    await cluster.addUser('BankA', 'alice', 'EUR', '1000.00');
    await cluster.addUser('BankB', 'bob', 'EUR', '1000.00');
    await cluster.addUser('BankC', 'carol', 'EUR', '100.00');
  });

  after(async () => {
    await cluster?.close();
    await agent?.close();
  });

  it('registers banks and gateway; their gRPC checks over mutual TLS turn passing', async () => {
    const started = Date.now();
    await cluster.startBank('BankA');
    await cluster.startBank('BankB');
    await cluster.startGateway();
    for (const id of [`${BANK_SERVICE}-BankA`, `${BANK_SERVICE}-BankB`]) {
      await waitFor(`${id} passing`, async () => (await agent.statusOf(BANK_SERVICE, id)) === 'passing');
    }
    await waitFor('gateway passing', async () => (await agent.statusOf(GATEWAY_SERVICE, gatewayId())) === 'passing');
    console.log(`      all three nodes passing ${Date.now() - started} ms after the first start`);
    // The check went through mutual TLS with the agent's client certificate (the server demands one).
    const check = (await agent.checks(BANK_SERVICE)).find((c) => c.serviceId === `${BANK_SERVICE}-BankA`)!;
    expect(check.output).to.match(/gRPC check localhost:\d+: success/);
    ({ metadata: alice, token: aliceToken } = await cluster.login('BankA', 'alice'));
  });

  it('moves money between banks found through Consul', async () => {
    const res = await transfer(['BankB', 'bob'], 1000n);
    expect(res.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    await eventually(async () => (await balance('BankB', 'bob')) === 101_000n);
  });

  it('lets a client find the gateway through Consul when no address is given', async () => {
    const config = ConfigSchema.parse({ ...cluster.config, client: { ...cluster.config.client, gatewayAddress: 'localhost:1' } });
    const notices: string[] = [];
    const address = await resolveGatewayAddress(config, { notice: (l) => notices.push(l) });
    expect(address).to.equal(`localhost:${cluster.config.gateway.port}`);
    expect(notices).to.deep.equal([]);
    const balanceRun = await runBin('client', ['--config', cluster.configPath, '--set', 'client.gatewayAddress="localhost:1"',
      'login', 'BankA', 'alice', '--password-stdin'], { input: `${cluster.passwordOf('BankA', 'alice')}\n` });
    expect(balanceRun.code, balanceRun.stderr + balanceRun.stdout).to.equal(0);
  });

  it('publishes the CA certificate and the JWKS in KV; they round-trip and verify real tokens', async () => {
    const prefix = 'payments';
    const trust = await readTrust(agent.client, prefix, 2000);
    expect(trust.caPem).to.equal(fs.readFileSync(path.join(cluster.certsDir, 'ca.crt'), 'utf8'));
    const kid = decodeProtectedHeader(aliceToken).kid;
    expect(trust.jwks?.keys.map((k) => k.kid)).to.include(kid);
    for (const key of trust.jwks!.keys) expect(key).to.not.have.property('d');
    const verified = await verifyWithJwks(aliceToken, trust.jwks!);
    expect(verified.ok && verified.value).to.include({ bank: 'BankA', username: 'alice' });
    // Round trip of arbitrary material under another prefix: what goes in comes out unchanged.
    await publishTrust(agent.client, 'roundtrip', { caPem: trust.caPem!, jwks: trust.jwks! }, 2000);
    expect(await readTrust(agent.client, 'roundtrip', 2000)).to.deep.equal({ caPem: trust.caPem, jwks: trust.jwks });
    expect(trustKeys('roundtrip')).to.deep.equal({ ca: 'roundtrip/trust/ca.crt', jwks: 'roundtrip/trust/jwks.json' });
  });

  it('finds a bank started after the gateway, without restarting the gateway', async () => {
    const started = Date.now();
    await cluster.startBank('BankC');
    const routed = await untilRoutable(() => transfer(['BankC', 'carol'], 100n), 'a transfer to BankC');
    expect(routed.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    console.log(`      BankC usable ${Date.now() - started} ms after its start`);
    await eventually(async () => (await balance('BankC', 'carol')) === 10_100n);
  });

  it('SIGKILLed bank turns critical within seconds; the gateway stops routing to it (fast UNAVAILABLE, no money moved)', async () => {
    const aliceBefore = await balance('BankA', 'alice');
    await cluster.stopBank('BankB', 'SIGKILL');
    const killedAt = Date.now();
    const criticalMs = await waitFor('BankB critical',
      async () => (await agent.statusOf(BANK_SERVICE, `${BANK_SERVICE}-BankB`)) === 'critical');
    await waitFor('gateway drops BankB',
      async () => gatewayLog(cluster).some((l) => l.message === 'bank has no passing instance' && l.bank === 'BankB'));
    const droppedMs = Date.now() - killedAt;
    // Timings are printed, not asserted: they depend on the machine's load (the wait bounds above
    // only keep a broken system from hanging the suite).
    console.log(`      BankB critical ${criticalMs} ms after SIGKILL; out of the gateway's view after ${droppedMs} ms`);
    const failedPreparesBefore = gatewayLog(cluster).filter((l) => l.message === 'prepare failed').length;
    const key = randomUUID();
    const t0 = Date.now();
    await expectFailure(transfer(['BankB', 'bob'], 700n, key), Status.UNAVAILABLE, 'BANK_UNAVAILABLE');
    const failMs = Date.now() - t0;
    console.log(`      transfer to the dead bank refused in ${failMs} ms (prepare timeout 5000 ms)`);
    // Refused without waiting for the prepare deadline (that would be PREPARE_TIMEOUT) and not even
    // attempted: no prepare went out to a dead address.
    expect(gatewayLog(cluster).filter((l) => l.message === 'prepare failed').length).to.equal(failedPreparesBefore);
    const got = await gw().getTransfer({ idempotencyKey: key }, { metadata: alice });
    expect(got.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_ABORTED);
    await eventually(async () => {
      const a = await cluster.balanceOf('BankA', 'alice');
      return a.availableMinor === a.balanceMinor;
    });
    expect(await balance('BankA', 'alice')).to.equal(aliceBefore);
  });

  it('routes to a restarted bank again', async () => {
    await cluster.startBank('BankB');
    const ms = await waitFor('BankB passing again',
      async () => (await agent.statusOf(BANK_SERVICE, `${BANK_SERVICE}-BankB`)) === 'passing');
    const routed = await untilRoutable(() => transfer(['BankB', 'bob'], 200n), 'a transfer to BankB');
    expect(routed.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    console.log(`      restarted BankB passing after ${ms} ms and routed to`);
    await eventually(async () => (await balance('BankB', 'bob')) === 101_200n);
  });

  // (That the old address's channel is then retired is bank-stream.test.ts's business.)
  it('routes to a bank that came back on another port', async () => {
    const oldPort = cluster.config.banks.BankB.port;
    await cluster.stopBank('BankB', 'SIGTERM');
    cluster.config.banks.BankB.port = 0;
    cluster.writeConfig();
    await cluster.startBank('BankB');
    expect(cluster.config.banks.BankB.port).to.not.equal(oldPort);
    const routed = await untilRoutable(() => transfer(['BankB', 'bob'], 300n), 'a transfer to BankB at its new port');
    expect(routed.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    await eventually(async () => (await balance('BankB', 'bob')) === 101_500n);
  });

  it('deregisters a bank on graceful shutdown, before it drains', async () => {
    expect(await agent.serviceIds()).to.include(`${BANK_SERVICE}-BankC`);
    await cluster.stopBank('BankC', 'SIGTERM');
    expect(await agent.serviceIds()).to.not.include(`${BANK_SERVICE}-BankC`);
    const log = fs.readFileSync(path.join(cluster.dir, 'logs', 'BankC.log'), 'utf8');
    expect(log.indexOf('deregistered from consul')).to.be.greaterThan(-1);
    expect(log.indexOf('deregistered from consul')).to.be.lessThan(log.indexOf('bank stopped'));
    // A configured bank without a passing instance: UNAVAILABLE at once, not NOT_FOUND.
    await waitFor('gateway drops BankC',
      async () => gatewayLog(cluster).some((l) => l.message === 'bank has no passing instance' && l.bank === 'BankC'));
    const failedPreparesBefore = gatewayLog(cluster).filter((l) => l.message === 'prepare failed').length;
    await expectFailure(transfer(['BankC', 'carol'], 100n), Status.UNAVAILABLE, 'BANK_UNAVAILABLE');
    // Refused from discovery alone (no prepare left for BankC), not by the prepare deadline.
    expect(gatewayLog(cluster).filter((l) => l.message === 'prepare failed').length).to.equal(failedPreparesBefore);
  });

  it('starts a bank that takes its CA certificate from Consul KV (consul.trustFromKv)', async () => {
    // Its folder holds only its own key and certificate: no ca.crt.
    const ownDir = path.join(cluster.dir, 'certs-bankc-only');
    fs.mkdirSync(ownDir, { mode: 0o700 });
    for (const f of ['BankC.crt', 'BankC.key']) fs.copyFileSync(path.join(cluster.certsDir, f), path.join(ownDir, f));
    await cluster.startBank('BankC', { PAYMENTS__CONSUL__TRUSTFROMKV: 'true', PAYMENTS__TLS__DIR: ownDir });
    // The log file is written asynchronously: the line may land after the ready line.
    await eventually(async () => nodeLog(cluster, 'BankC').some((l) => l.message === 'CA certificate read from consul KV'),
      20_000, 'BankC logging where its CA came from');
    await waitFor('BankC passing', async () => (await agent.statusOf(BANK_SERVICE, `${BANK_SERVICE}-BankC`)) === 'passing');
    const routed = await untilRoutable(() => transfer(['BankC', 'carol'], 100n), 'a transfer to BankC');
    expect(routed.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    await eventually(async () => (await balance('BankC', 'carol')) === 10_200n);
  });

  it('rotates the signing key: old tokens verify until they expire, new ones carry the new kid', async () => {
    const oldKid = decodeProtectedHeader(aliceToken).kid;
    const rotate = await runBin('gateway', ['rotate-key', '--config', cluster.configPath]);
    expect(rotate.code, rotate.stderr).to.equal(0);
    expect(rotate.stdout).to.match(/new kid /);
    await cluster.stopGateway('SIGTERM');
    expect(await agent.serviceIds()).to.not.include(gatewayId());
    await cluster.startGateway();
    await waitFor('gateway passing', async () => (await agent.statusOf(GATEWAY_SERVICE, gatewayId())) === 'passing');
    // The token signed before the rotation still works.
    const bal = await gw().getBalance({}, { metadata: alice });
    expect(bal.account?.username).to.equal('alice');
    const fresh = await cluster.login('BankA', 'alice');
    const newKid = decodeProtectedHeader(fresh.token).kid;
    expect(newKid).to.be.a('string').and.not.equal(oldKid);
    const jwks = (await readTrust(agent.client, 'payments', 2000)).jwks!;
    expect(jwks.keys.map((k) => k.kid)).to.have.members([newKid, oldKid]);
    expect((await verifyWithJwks(aliceToken, jwks)).ok).to.equal(true);
    expect((await verifyWithJwks(fresh.token, jwks)).ok).to.equal(true);
    alice = fresh.metadata;
  });

  it('keeps using the last known banks while Consul is down, and follows Consul when it returns', async () => {
    await agent.stop('SIGKILL');
    const outageStart = Date.now();
    for (let i = 0; i < 3; i++) {
      const r = await transfer(['BankB', 'bob'], 10n);
      expect(r.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    }
    await waitFor('gateway warns about consul',
      async () => gatewayLog(cluster).some((l) => l.message === 'consul unreachable; keeping the last known addresses'));
    expect(cluster.gateway!.child.exitCode).to.equal(null);
    console.log(`      3 transfers committed during a Consul outage (${Date.now() - outageStart} ms)`);
    // Consul comes back empty (a dev agent): the nodes register again and the gateway follows.
    await agent.launch();
    const back = await waitFor('nodes registered again', async () => {
      const ids = await agent.serviceIds();
      return [`${BANK_SERVICE}-BankA`, `${BANK_SERVICE}-BankB`, gatewayId()].every((id) => ids.includes(id));
    });
    console.log(`      nodes re-registered ${back} ms after Consul restarted`);
    await waitFor('gateway follows consul again',
      async () => gatewayLog(cluster).some((l) => l.message === 'consul reachable again; discovery follows it'));
    await waitFor('BankB passing', async () => (await agent.statusOf(BANK_SERVICE, `${BANK_SERVICE}-BankB`)) === 'passing');
    const routed = await untilRoutable(() => transfer(['BankB', 'bob'], 10n), 'a transfer to BankB');
    expect(routed.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    // And it watches again: a bank killed now leaves the gateway's view.
    const dropsBefore = gatewayLog(cluster).filter((l) => l.message === 'bank has no passing instance' && l.bank === 'BankA').length;
    await cluster.stopBank('BankA', 'SIGKILL');
    await waitFor('gateway drops BankA', async () =>
      gatewayLog(cluster).filter((l) => l.message === 'bank has no passing instance' && l.bank === 'BankA').length > dropsBefore);
    await cluster.startBank('BankA');
  });
});

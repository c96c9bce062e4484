import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChannelCredentials, Client as RawClient, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { Metadata, Status, type CompatServiceDefinition } from 'nice-grpc';
import { HealthDefinition } from 'nice-grpc-server-health';
import { demoPassword, seed } from '../../src/bank/admin.js';
import { startBankServer, type RunningBank } from '../../src/bank/server.js';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { systemClock } from '../../src/core/clock.js';
import { newId } from '../../src/core/ids.js';
import { StaticDiscovery } from '../../src/discovery/static.js';
import { BankServiceDefinition } from '../../src/gen/bank/v1/bank.js';
import { CoordinatorServiceDefinition, Decision } from '../../src/gen/coordinator/v1/coordinator.js';
import { GatewayServiceDefinition } from '../../src/gen/payments/v1/gateway.js';
import { startGatewayServer, type RunningGateway } from '../../src/gateway/server.js';
import { createNodeClient, type NodeClient } from '../../src/grpc/client.js';
import { reasonOf, retryDelayMsOf, statusOf } from '../../src/grpc/errors.js';
import { closeLogger, createLogger, silentLogger, type Logger } from '../../src/logging/logger.js';
import { loadTls } from '../../src/tls/credentials.js';
import { PEER_IDENTITY_HEADER, PEER_ROLE_HEADER, peerCertificateReads } from '../../src/tls/peer-identity.js';
import { bearer, CALL_LIMITS, eventually, freePort } from '../helpers/cluster.js';
import { expectFailure } from '../helpers/expect-failure.js';
import { reflect } from '../helpers/reflection-client.js';
import { ROOT } from '../helpers/processes.js';

// The gateway and a bank in-process on ephemeral loopback ports, over mutual TLS with the
// certificates of scripts/gen-certs.sh: who may call what (certificate roles), login throttling,
// the bank's bound on password checks, and bounded input (message size, log lines, bad bytes).

const SERVING = 1; // grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING

describe('security: certificate roles, login throttling, bounded input', function () {
  this.timeout(60_000);
  let dir: string;
  let certs: string;
  let config: Config;
  let bank: RunningBank;
  /** Default limits (64 KiB messages); login throttle after 3 failures, back-off 60 s. */
  let gateway: RunningGateway;
  /** Accepts 4 MiB messages, so that huge fields reach the handlers and their log lines. */
  let roomy: RunningGateway;
  let roomyLogger: Logger;
  const clients: NodeClient<CompatServiceDefinition>[] = [];

  function client<D extends CompatServiceDefinition>(definition: D, port: number, identity: string) {
    const c = createNodeClient(definition, `localhost:${port}`, loadTls(certs, identity), silentLogger(), CALL_LIMITS);
    clients.push(c);
    return c.client;
  }

  const roomyLog = () => path.join(dir, 'logs', 'roomy.log');
  const logLines = () => (fs.existsSync(roomyLog()) ? fs.readFileSync(roomyLog(), 'utf8').split('\n').filter(Boolean) : []);

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'security-it-'));
    certs = path.join(dir, 'certs');
    execFileSync(path.join(ROOT, 'scripts/gen-certs.sh'), [certs, 'BankA'], { stdio: 'ignore' });
    const bankPort = await freePort();
    config = ConfigSchema.parse({
      tls: { dir: certs },
      logging: { dir: path.join(dir, 'logs'), console: false },
      gateway: { port: 0, dataDir: path.join(dir, 'gateway'), loginAccountFailuresMax: 3, loginBackoffBaseMs: 60_000, loginBackoffMaxMs: 120_000 },
      banks: { BankA: { host: '127.0.0.1', port: bankPort, dataDir: path.join(dir, 'BankA') } },
      bank: { passwordChecksMax: 1, passwordCheckQueueMax: 1 },
    });
    bank = await startBankServer(config, 'BankA', silentLogger());
    await seed(bank.ledger, 'BankA');
    const discovery = new StaticDiscovery(config);
    gateway = await startGatewayServer({ config, logger: silentLogger(), discovery, clock: systemClock });
    const roomyConfig = ConfigSchema.parse({
      ...config,
      gateway: { ...config.gateway, dataDir: path.join(dir, 'roomy'), maxReceiveMessageBytes: 4 * 1024 * 1024,
        loginAccountFailuresMax: 5, loginBackoffBaseMs: 1000 },
    });
    roomyLogger = createLogger({ node: 'roomy', dir: path.join(dir, 'logs'), level: 'info', console: false, fieldMaxChars: 1024 });
    roomy = await startGatewayServer({ config: roomyConfig, logger: roomyLogger, discovery, clock: systemClock });
  });

  after(async () => {
    for (const c of clients) c.close();
    await gateway?.stop(1000);
    await roomy?.stop(1000);
    await bank?.stop();
    if (roomyLogger) await closeLogger(roomyLogger);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('each service admits only its callers’ role', () => {
    // role -> certificate file; "bank" is BankA's certificate, "intruder" one of our CA with no role.
    const ROLES = { client: 'client', gateway: 'gateway', bank: 'BankA', consul: 'consul', intruder: 'intruder' } as const;
    type Role = keyof typeof ROLES;
    const SERVICES: { name: string; admits: readonly Role[]; call: (identity: string) => Promise<unknown> }[] = [
      {
        name: 'payments.v1.GatewayService',
        admits: ['client'],
        // The finding: any certificate of our CA could log in and get a token.
        call: async (id) => {
          const r = await client(GatewayServiceDefinition, gateway.port, id).login({ bank: 'BankA', username: 'alice', password: demoPassword('alice') });
          expect(r.accessToken).to.be.a('string').and.not.equal('');
        },
      },
      {
        name: 'bank.v1.BankService',
        admits: ['gateway'],
        call: async (id) => {
          const b = await client(BankServiceDefinition, bank.port, id).getBalance({ username: 'alice' });
          expect(b.username).to.equal('alice');
        },
      },
      {
        name: 'coordinator.v1.CoordinatorService',
        admits: ['bank'],
        call: async (id) => {
          const d = await client(CoordinatorServiceDefinition, gateway.port, id).getDecision({ transactionId: newId() });
          expect(d.decision).to.equal(Decision.DECISION_ABORT); // never heard of: presumed abort
        },
      },
      {
        // Reflection reveals only the schema: admitted like health; listed services keep their own admission.
        name: 'grpc.reflection.v1.ServerReflection (gateway and bank)',
        admits: ['client', 'gateway', 'bank', 'consul', 'intruder'],
        call: async (id) => {
          const atGateway = await reflect(`localhost:${gateway.port}`, loadTls(certs, id), 10_000);
          expect(atGateway.services).to.have.members(['payments.v1.GatewayService', 'coordinator.v1.CoordinatorService']);
          expect(atGateway.methods['payments.v1.GatewayService']).to.include.members(['Login', 'CreateTransfer', 'GetBalance']);
          const atBank = await reflect(`localhost:${bank.port}`, loadTls(certs, id), 10_000);
          expect(atBank.services).to.have.members(['bank.v1.BankService']);
          expect(atBank.methods['bank.v1.BankService']).to.include.members(['PrepareBatch', 'CommitBatch']);
        },
      },
      {
        name: 'grpc.health.v1.Health (gateway and bank)',
        admits: ['client', 'gateway', 'bank', 'consul', 'intruder'],
        call: async (id) => {
          for (const port of [gateway.port, bank.port]) {
            expect((await client(HealthDefinition, port, id).check({ service: '' })).status).to.equal(SERVING);
          }
        },
      },
    ];
    for (const service of SERVICES) {
      for (const [role, identity] of Object.entries(ROLES) as [Role, string][]) {
        const admitted = service.admits.includes(role);
        it(`${service.name} ${admitted ? 'admits' : 'refuses'} a ${role} certificate`, async () => {
          if (admitted) {
            await service.call(identity);
          } else {
            let error: unknown;
            await service.call(identity).catch((e: unknown) => { error = e; });
            expect(statusOf(error), String(error)).to.equal(Status.PERMISSION_DENIED);
            expect(reasonOf(error)).to.equal('PEER_NOT_ALLOWED');
          }
        });
      }
    }

    it('reads a connection’s certificate once, not per call', async () => {
      const gw = client(GatewayServiceDefinition, gateway.port, 'client');
      await expectFailure(gw.getBalance({}), Status.UNAUTHENTICATED, 'TOKEN_MISSING');
      const before = peerCertificateReads();
      for (let i = 0; i < 20; i++) await expectFailure(gw.getBalance({}), Status.UNAUTHENTICATED, 'TOKEN_MISSING');
      expect(peerCertificateReads()).to.equal(before);
      // A new connection is read again.
      await expectFailure(client(GatewayServiceDefinition, gateway.port, 'client').getBalance({}), Status.UNAUTHENTICATED, 'TOKEN_MISSING');
      expect(peerCertificateReads()).to.equal(before + 1);
    });

    it('ignores identity headers a caller sends itself', async () => {
      const forged = new Metadata({ [PEER_IDENTITY_HEADER]: 'BankA', [PEER_ROLE_HEADER]: 'client' });
      const e = await expectFailure(
        client(GatewayServiceDefinition, gateway.port, 'intruder').login({ bank: 'BankA', username: 'alice', password: 'x' }, { metadata: forged }),
        Status.PERMISSION_DENIED, 'PEER_NOT_ALLOWED');
      expect(e.details).to.match(/"intruder" \(no role\)/);
      await expectFailure(
        client(CoordinatorServiceDefinition, gateway.port, 'client').getDecision({ transactionId: newId() }, { metadata: new Metadata({ [PEER_ROLE_HEADER]: 'bank', [PEER_IDENTITY_HEADER]: 'BankA' }) }),
        Status.PERMISSION_DENIED, 'PEER_NOT_ALLOWED');
    });
  });

  describe('login throttling', () => {
    it('backs off after N failures with RESOURCE_EXHAUSTED LOGIN_THROTTLED and a RetryInfo delay, before the bank is asked', async () => {
      const gw = client(GatewayServiceDefinition, gateway.port, 'client');
      const wrong = { bank: 'BankA', username: 'carol', password: 'wrong' };
      for (let i = 0; i < 3; i++) await expectFailure(gw.login(wrong), Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
      const e = await expectFailure(gw.login(wrong), Status.RESOURCE_EXHAUSTED, 'LOGIN_THROTTLED');
      const delay = retryDelayMsOf(e);
      expect(delay).to.be.greaterThan(50_000).and.at.most(60_000);
      expect(e.details).to.match(/too many failed logins for this account; try again in \d+ s/);
      // Even the right password waits: the bank is not asked while the account backs off.
      await expectFailure(gw.login({ ...wrong, password: demoPassword('carol') }), Status.RESOURCE_EXHAUSTED, 'LOGIN_THROTTLED');
      // Another account is not affected.
      const ok = await gw.login({ bank: 'BankA', username: 'alice', password: demoPassword('alice') });
      expect(ok.account?.username).to.equal('alice');
    });

    it('a successful login clears the account’s failures; each failure is audited once, without the password', async () => {
      const gw = client(GatewayServiceDefinition, roomy.port, 'client');
      const wrong = { bank: 'BankA', username: 'alice', password: 'not-alices-password-123' };
      for (let i = 0; i < 3; i++) await expectFailure(gw.login(wrong), Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
      await gw.login({ ...wrong, password: demoPassword('alice') });
      await expectFailure(gw.login(wrong), Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
      const failed = () => logLines().filter((l) => l.includes('"login failed"'));
      await eventually(async () => failed().length >= 4);
      const audits = failed().map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(audits).to.have.length(4);
      expect(audits[0]).to.include({ bank: 'BankA', username: 'alice', accountFailures: 1, level: 'info' });
      expect(audits[0]!.peer).to.equal('client@127.0.0.1');
      // Counted from 1 again after the successful login.
      expect(audits.map((a) => a.accountFailures)).to.deep.equal([1, 2, 3, 1]);
      expect(fs.readFileSync(roomyLog(), 'utf8')).to.not.contain('not-alices-password');
    });
  });

  it('a bank refuses password checks beyond its bound with RESOURCE_EXHAUSTED BANK_BUSY, and the gateway passes that on', async () => {
    // bank.passwordChecksMax 1, passwordCheckQueueMax 1: of 4 checks at once, 2 are refused.
    const direct = client(BankServiceDefinition, bank.port, 'gateway');
    const attempts = await Promise.allSettled([0, 1, 2, 3].map(() => direct.authenticate({ username: 'alice', password: 'nope' })));
    const reasons = attempts.map((a) => (a.status === 'rejected' ? `${Status[statusOf(a.reason)!]} ${reasonOf(a.reason)}` : 'OK'));
    expect(reasons.filter((r) => r === 'RESOURCE_EXHAUSTED BANK_BUSY')).to.have.length(2);
    expect(reasons.filter((r) => r === 'UNAUTHENTICATED INVALID_CREDENTIALS')).to.have.length(2);

    const gw = client(GatewayServiceDefinition, roomy.port, 'client');
    const logins = await Promise.allSettled([0, 1, 2, 3].map(() => gw.login({ bank: 'BankA', username: 'carol', password: demoPassword('carol') })));
    const outcomes = logins.map((a) => (a.status === 'rejected' ? `${Status[statusOf(a.reason)!]} ${reasonOf(a.reason)}` : 'OK'));
    expect(outcomes.filter((o) => o === 'RESOURCE_EXHAUSTED BANK_BUSY')).to.have.length(2);
    expect(outcomes.filter((o) => o === 'OK')).to.have.length(2);
  });

  describe('bounded input', () => {
    it('refuses a request larger than gateway.maxReceiveMessageBytes with RESOURCE_EXHAUSTED', async () => {
      const gw = client(GatewayServiceDefinition, gateway.port, 'client');
      await expectFailure(gw.login({ bank: 'BankA', username: 'a'.repeat(3_000_000), password: 'x' }), Status.RESOURCE_EXHAUSTED);
      await expectFailure(gw.login({ bank: 'BankA', username: 'a'.repeat(70_000), password: 'x' }), Status.RESOURCE_EXHAUSTED);
      // At the bound the request is read, and refused for what it is.
      await expectFailure(gw.login({ bank: 'BankA', username: 'a'.repeat(65_000), password: 'x' }), Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT');
    });

    it('cuts caller values in log lines, noting their length', async () => {
      const gw = client(GatewayServiceDefinition, roomy.port, 'client');
      await expectFailure(gw.login({ bank: 'BankA', username: 'u'.repeat(3_000_000), password: 'x' }), Status.INVALID_ARGUMENT);
      const alice = bearer((await gw.login({ bank: 'BankA', username: 'alice', password: demoPassword('alice') })).accessToken);
      const key = 'k'.repeat(100_000);
      await expectFailure(gw.getTransfer({ idempotencyKey: key }, { metadata: alice }), Status.INVALID_ARGUMENT, 'INVALID_IDEMPOTENCY_KEY');
      await expectFailure(
        gw.createTransfer({ idempotencyKey: key, toBank: 'BankA', toUsername: 'carol', amountMinor: 1n, currency: 'E'.repeat(50_000) }, { metadata: alice }),
        Status.INVALID_ARGUMENT, 'INVALID_IDEMPOTENCY_KEY');
      await expectFailure(
        gw.createTransfer({ idempotencyKey: newId(), toBank: 'BankA', toUsername: 'carol', amountMinor: 1n, currency: 'E'.repeat(50_000) }, { metadata: alice }),
        Status.INVALID_ARGUMENT, 'INVALID_CURRENCY');
      const done = (lines: string[]) => lines.filter((l) => l.includes('"rpc"') && l.includes('INVALID_ARGUMENT')).length >= 4;
      await eventually(async () => done(logLines()));
      const rpcLines = logLines().filter((l) => l.includes('"rpc"') && l.includes('INVALID_ARGUMENT'));
      for (const line of rpcLines) expect(line.length, line.slice(0, 300)).to.be.below(1000);
      expect(rpcLines.join('\n')).to.contain('(3000000 chars)').and.contain('(100000 chars)').and.contain('(50000 chars)');
      for (const line of logLines()) expect(line.length).to.be.below(2000);
    });

    it('answers bytes that are no valid request with INVALID_ARGUMENT MALFORMED_REQUEST, not INTERNAL', async () => {
      const tls = loadTls(certs, 'client');
      const raw = new RawClient(`localhost:${gateway.port}`, ChannelCredentials.createSsl(tls.ca, tls.key, tls.cert));
      try {
        // Field 1 (bank), length-delimited, says 5 bytes and has 1.
        const err = await new Promise<ServiceError | null>((resolve) => {
          raw.makeUnaryRequest('/payments.v1.GatewayService/Login', (b: Buffer) => b, (b: Buffer) => b,
            Buffer.from([0x0a, 0x05, 0x41]), (e) => resolve(e));
        });
        expect(err?.code).to.equal(Status.INVALID_ARGUMENT);
        expect(err?.details).to.match(/not a valid \/payments\.v1\.GatewayService\/Login request/);
      } finally {
        raw.close();
      }
    });

    it('answers Logout with an already revoked token UNAUTHENTICATED TOKEN_REVOKED, like every other call', async () => {
      const gw = client(GatewayServiceDefinition, gateway.port, 'client');
      const session = bearer((await gw.login({ bank: 'BankA', username: 'alice', password: demoPassword('alice') })).accessToken);
      await gw.logout({}, { metadata: session });
      await expectFailure(gw.logout({}, { metadata: session }), Status.UNAUTHENTICATED, 'TOKEN_REVOKED');
      await expectFailure(gw.getBalance({}, { metadata: session }), Status.UNAUTHENTICATED, 'TOKEN_REVOKED');
    });
  });
});

import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { ClientFailure } from '../../src/client/failure.js';
import { GatewayClient } from '../../src/client/gateway-client.js';
import { loadTls } from '../../src/tls/credentials.js';
import { FakeGateway, makeCerts, tempDir } from './client-fake-gateway.js';
import { DEFAULT_CONFIG } from '../helpers/clock.js';

// The SDK in-process against the in-test gateway over mutual TLS.

const LIMITS = { callTimeoutMs: 2000, retryMaxAttempts: 4, retryBaseDelayMs: 10, retryMaxDelayMs: 50, ...DEFAULT_CONFIG.grpc };

describe('client SDK (GatewayClient)', () => {
  let root: string;
  let certs: string;
  let fake: FakeGateway;
  let sdk: GatewayClient;

  before(() => {
    root = tempDir('client-sdk-');
    certs = makeCerts(root);
  });

  beforeEach(async () => {
    fake = await FakeGateway.start(certs);
    fake.addUser('BankA', 'alice', 'alice-pw', 'EUR', 10_000n);
    fake.addUser('BankB', 'bob', 'bob-pw', 'EUR', 0n);
    sdk = new GatewayClient({ address: fake.address, tls: loadTls(certs, 'client'), limits: LIMITS });
  });

  afterEach(() => {
    sdk.close();
    fake.close();
  });

  after(() => fs.rmSync(root, { recursive: true, force: true }));

  async function failureOf(p: Promise<unknown>): Promise<ClientFailure> {
    try {
      await p;
    } catch (err) {
      expect(err).to.be.instanceOf(ClientFailure);
      return err as ClientFailure;
    }
    throw new Error('expected a failure');
  }

  it('logs in and sends the bearer token on protected calls', async () => {
    const login = await sdk.login('BankA', 'alice', 'alice-pw');
    expect(login.account).to.deep.equal({ bank: 'BankA', username: 'alice', currency: 'EUR' });
    expect(login.expiresAtMs).to.be.greaterThan(Date.now());
    expect(fake.callsOf('Login')[0]!.authorization).to.equal(undefined);
    const balance = await sdk.balance();
    expect(balance).to.deep.include({ balanceMinor: 10_000n, availableMinor: 10_000n });
    expect(fake.callsOf('GetBalance')[0]!.authorization).to.equal(`Bearer ${login.token}`);

    const key = randomUUID();
    const t = await sdk.transfer({ toBank: 'BankB', toUsername: 'bob', amountMinor: 250n, currency: 'EUR', idempotencyKey: key });
    expect(t).to.deep.include({ status: 'committed', amountMinor: 250n, idempotencyKey: key });
    expect(await sdk.getTransfer(key)).to.deep.equal(t);
    const page = await sdk.history({ pageSize: 5 });
    expect(page.entries[0]).to.deep.include({ direction: 'debit', amountMinor: 250n, balanceAfterMinor: 9_750n });
    await sdk.logout();
    expect(fake.tokenActive(login.token)).to.equal(false);
    const after = await failureOf(sdk.balance());
    expect(after).to.include({ code: 'UNAUTHENTICATED', reason: 'NOT_LOGGED_IN' });
  });

  it('surfaces refusals as ClientFailure with code, reason and message', async () => {
    const bad = await failureOf(sdk.login('BankA', 'alice', 'wrong'));
    expect(bad).to.include({ code: 'UNAUTHENTICATED', reason: 'INVALID_CREDENTIALS', message: 'wrong user name or password' });
    await sdk.login('BankA', 'alice', 'alice-pw');
    const poor = await failureOf(sdk.transfer({ toBank: 'BankB', toUsername: 'bob', amountMinor: 10_001n, currency: 'EUR', idempotencyKey: randomUUID() }));
    expect(poor).to.include({ code: 'FAILED_PRECONDITION', reason: 'INSUFFICIENT_FUNDS' });
    expect(poor.isTransport).to.equal(false);
    const missing = await failureOf(sdk.getTransfer(randomUUID()));
    expect(missing).to.include({ code: 'NOT_FOUND', reason: 'TRANSFER_NOT_FOUND' });
  });

  it('refuses a non-UUID key or a zero amount without calling', async () => {
    await sdk.login('BankA', 'alice', 'alice-pw');
    const f1 = await failureOf(sdk.transfer({ toBank: 'BankB', toUsername: 'bob', amountMinor: 1n, currency: 'EUR', idempotencyKey: 'k1' }));
    expect(f1.reason).to.equal('INVALID_IDEMPOTENCY_KEY');
    const f2 = await failureOf(sdk.transfer({ toBank: 'BankB', toUsername: 'bob', amountMinor: 0n, currency: 'EUR', idempotencyKey: randomUUID() }));
    expect(f2.reason).to.equal('INVALID_AMOUNT');
    expect(fake.callsOf('CreateTransfer')).to.have.length(0);
  });

  it('retries CreateTransfer on UNAVAILABLE with the same key; never retries Login', async () => {
    await sdk.login('BankA', 'alice', 'alice-pw');
    fake.failCreateTransfers = 3;
    const key = randomUUID();
    const t = await sdk.transfer({ toBank: 'BankB', toUsername: 'bob', amountMinor: 100n, currency: 'EUR', idempotencyKey: key });
    expect(t.status).to.equal('committed');
    expect(fake.callsOf('CreateTransfer').map((c) => c.idempotencyKey)).to.deep.equal([key, key, key, key]);
    expect(fake.balanceOf('BankB', 'bob')).to.equal(100n);

    fake.failLogins = 1;
    const f = await failureOf(sdk.login('BankA', 'alice', 'alice-pw'));
    expect(f).to.include({ code: 'UNAVAILABLE', reason: 'GATEWAY_UNREACHABLE' });
    expect(f.isTransport).to.equal(true);
    expect(fake.callsOf('Login')).to.have.length(2);
  });

  it('fails over between several gateway instances on UNAVAILABLE and stays with the one that answered', async () => {
    const second = await FakeGateway.start(certs);
    second.addUser('BankA', 'alice', 'alice-pw', 'EUR', 10_000n);
    const both = new GatewayClient({ address: `${fake.address}, ${second.address}`, tls: loadTls(certs, 'client'), limits: LIMITS });
    try {
      await both.login('BankA', 'alice', 'alice-pw');
      expect(both.address).to.equal(fake.address);
      fake.close();
      await both.login('BankA', 'alice', 'alice-pw');
      expect(both.address).to.equal(second.address);
      expect(second.callsOf('Login')).to.have.length(1);
      second.close();
      // Every instance refuses: UNAVAILABLE after retryMaxAttempts rounds.
      const f = await failureOf(both.login('BankA', 'alice', 'alice-pw'));
      expect(f).to.include({ code: 'UNAVAILABLE', reason: 'GATEWAY_UNREACHABLE' });
    } finally {
      both.close();
      second.close();
    }
  });

  it('gives every call a deadline', async () => {
    const quick = new GatewayClient({ address: fake.address, tls: loadTls(certs, 'client'), limits: { ...LIMITS, callTimeoutMs: 200 } });
    try {
      // The fake would answer (successfully) after 1 s: only the 200 ms deadline makes this fail.
      fake.delayMs = 1000;
      const f = await failureOf(quick.login('BankA', 'alice', 'alice-pw'));
      expect(f).to.include({ code: 'DEADLINE_EXCEEDED', reason: 'GATEWAY_TIMEOUT' });
    } finally {
      quick.close();
    }
  });
});

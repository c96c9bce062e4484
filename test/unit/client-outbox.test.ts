import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ClientFailure } from '../../src/client/failure.js';
import { Outbox } from '../../src/client/outbox.js';
import { classifyFailure, OutboxWorker } from '../../src/client/outbox-worker.js';
import type { GatewayClient } from '../../src/client/gateway-client.js';
import type { TransferInfo, TransferRequest } from '../../src/client/types.js';
import { systemClock } from '../../src/core/clock.js';
import { runBin } from '../helpers/processes.js';
import { FakeGateway, makeCerts, tempDir } from './client-fake-gateway.js';

// The outbox store (durable entries, FIFO, cancel rules, bounds, lease), the worker's reading of
// failures, and the interactive client sending the queue, against an in-test gateway.

const LIMITS = { outboxMaxEntries: 3, outboxHistoryMax: 2, outboxLeaseMs: 10_000 };
const alice = { bank: 'BankA', username: 'alice' };
const bob = { bank: 'BankB', username: 'bob' };

function newEntry(n: number, owner = alice) {
  return { idempotencyKey: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, owner, to: bob, amountMinor: BigInt(n * 100), currency: 'EUR' };
}

describe('client outbox store', () => {
  let dir: string;
  let outbox: Outbox;

  beforeEach(() => {
    dir = path.join(tempDir('client-outbox-'), 'data');
    outbox = Outbox.open(dir, LIMITS);
  });

  afterEach(() => {
    outbox.close();
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  });

  it('stores entries durably, owner-only, and survives a reopen', () => {
    const { entry, created } = outbox.add(newEntry(1), 1000);
    expect(created).to.equal(true);
    expect(entry).to.include({ id: 1, state: 'pending', sent: false, attempts: 0, amountMinor: 100n });
    expect(fs.statSync(dir).mode & 0o777).to.equal(0o700);
    expect(fs.statSync(outbox.file).mode & 0o777).to.equal(0o600);
    outbox.close();
    outbox = Outbox.open(dir, LIMITS);
    expect(outbox.get(1)).to.deep.include({ idempotencyKey: entry.idempotencyKey, state: 'pending' });
    // Same key, same parameters: the same entry; other parameters: refused.
    expect(outbox.add(newEntry(1), 2000)).to.deep.include({ created: false });
    expect(() => outbox.add({ ...newEntry(1), amountMinor: 5n }, 2000)).to.throw(ClientFailure, /already used/);
  });

  it('is bounded: a full outbox refuses with OUTBOX_FULL; finished entries are pruned to the history bound', () => {
    for (let i = 1; i <= 3; i++) outbox.add(newEntry(i), i);
    let err: unknown;
    try {
      outbox.add(newEntry(4), 4);
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ClientFailure);
    expect((err as ClientFailure).reason).to.equal('OUTBOX_FULL');
    expect((err as ClientFailure).code).to.equal('RESOURCE_EXHAUSTED');
    for (let i = 1; i <= 3; i++) outbox.finishCommitted(i, 10 + i, `tx-${i}`);
    expect(outbox.list().map((e) => e.id)).to.deep.equal([2, 3]);
    expect(outbox.add(newEntry(4), 20).created).to.equal(true);
  });

  it('cancels only never-sent entries; a sent one is in doubt for good', () => {
    outbox.add(newEntry(1), 1);
    outbox.add(newEntry(2), 2);
    expect(outbox.markSending(1, 3)).to.equal(true);
    expect(outbox.get(1)).to.include({ sent: true, attempts: 1 });
    expect(() => outbox.cancel(1, 4)).to.throw(ClientFailure, /cannot be cancelled/);
    expect(outbox.cancel(2, 4).state).to.equal('cancelled');
    // A cancelled entry is never sent.
    expect(outbox.markSending(2, 5)).to.equal(false);
    // A token refusal puts back what `sent` was before the attempt.
    outbox.add(newEntry(3), 6);
    outbox.markSending(3, 7);
    outbox.markNeedsLogin(3, 8, { code: 'UNAUTHENTICATED', reason: 'TOKEN_EXPIRED', message: 'expired' }, false);
    expect(outbox.get(3)).to.include({ state: 'needs_login', sent: false });
    expect(outbox.resumeAfterLogin(alice)).to.equal(1);
    expect(outbox.get(3)!.state).to.equal('pending');
  });

  it('keeps FIFO order per owner and holds other owners for their login', () => {
    outbox.add(newEntry(1), 1);
    outbox.add(newEntry(2, { bank: 'BankB', username: 'bob' }), 2);
    outbox.add(newEntry(3), 3);
    expect(outbox.waiting(alice).map((e) => e.id)).to.deep.equal([1, 3]);
    expect(outbox.holdForLogin(alice, { code: 'UNAUTHENTICATED', reason: 'NOT_LOGGED_IN', message: 'log in' })).to.equal(1);
    expect(outbox.get(2)!.state).to.equal('needs_login');
  });

  it('lets one live process hold the lease; it is taken over once it lapses (or its process is gone)', () => {
    const other = Outbox.open(dir, LIMITS);
    try {
      expect(outbox.acquireLease(1000).ok).to.equal(true);
      expect(other.acquireLease(1000)).to.deep.equal({ ok: false, pid: process.pid });
      // After the lease lapses, another process may take it.
      expect(other.acquireLease(1000 + LIMITS.outboxLeaseMs + 1).ok).to.equal(true);
    } finally {
      other.close();
    }
  });
});

describe('client outbox worker: the answer must be for the queued transfer', () => {
  let dir: string;
  let outbox: Outbox;
  beforeEach(() => {
    dir = path.join(tempDir('client-outbox-worker-'), 'data');
    outbox = Outbox.open(dir, LIMITS);
  });
  afterEach(() => {
    outbox.close();
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  });

  /** A gateway that commits whatever it is sent, but answers in `answerCurrency`. */
  function gatewayAnswering(answerCurrency: string): GatewayClient {
    const gateway = {
      address: 'in-test',
      setToken: () => {},
      waitConnected: async () => true,
      transfer: async (req: TransferRequest): Promise<TransferInfo> => ({
        transactionId: 'tx-1', idempotencyKey: req.idempotencyKey, from: alice,
        to: { bank: req.toBank, username: req.toUsername }, amountMinor: req.amountMinor,
        currency: answerCurrency, status: 'committed',
      }),
    };
    return gateway as unknown as GatewayClient;
  }

  async function sendOnce(answerCurrency: string) {
    const { entry } = outbox.add(newEntry(1), systemClock.nowMs());
    const worker = new OutboxWorker({
      outbox,
      gateway: () => gatewayAnswering(answerCurrency),
      session: () => ({ token: 't', account: { ...alice, currency: 'EUR' }, expiresAtMs: Number.MAX_SAFE_INTEGER }),
      dropSession: () => {},
      limits: { outboxRetryIntervalMs: 1000, outboxConnectTimeoutMs: 1000, outboxMaxAgeMs: 60_000 },
      clock: systemClock,
    });
    await worker.pass();
    return outbox.get(entry.id)!;
  }

  it('records a matching answer as committed', async () => {
    expect(await sendOnce('EUR')).to.include({ state: 'committed', transactionId: 'tx-1' });
  });

  it('refuses an answer in another currency: the entry stays pending with INVALID_RESPONSE', async () => {
    const entry = await sendOnce('USD');
    expect(entry.state).to.equal('pending');
    expect(entry.lastError?.reason).to.equal('INVALID_RESPONSE');
  });
});

describe('client outbox: which failures queue', () => {
  const f = (code: string, reason: string) => new ClientFailure(code, reason, 'x');
  it('queues transport failures and "try again" answers, reports the gateway\'s refusals at once', () => {
    expect(classifyFailure(f('UNAVAILABLE', 'GATEWAY_UNREACHABLE'))).to.equal('waiting');
    expect(classifyFailure(f('DEADLINE_EXCEEDED', 'GATEWAY_TIMEOUT'))).to.equal('waiting');
    expect(classifyFailure(f('UNAVAILABLE', 'SHUTTING_DOWN'))).to.equal('waiting');
    expect(classifyFailure(f('ABORTED', 'TRANSFER_IN_PROGRESS'))).to.equal('waiting');
    expect(classifyFailure(f('UNKNOWN', 'UNKNOWN'))).to.equal('waiting');
    // UNAVAILABLE with the gateway's reason BANK_UNAVAILABLE: the gateway answered; the key's outcome is fixed.
    expect(classifyFailure(f('UNAVAILABLE', 'BANK_UNAVAILABLE'))).to.equal('final');
    expect(classifyFailure(f('FAILED_PRECONDITION', 'INSUFFICIENT_FUNDS'))).to.equal('final');
    expect(classifyFailure(f('NOT_FOUND', 'ACCOUNT_NOT_FOUND'))).to.equal('final');
    expect(classifyFailure(f('INVALID_ARGUMENT', 'INVALID_AMOUNT'))).to.equal('final');
    expect(classifyFailure(f('DEADLINE_EXCEEDED', 'PREPARE_TIMEOUT'))).to.equal('final');
    expect(classifyFailure(f('UNAUTHENTICATED', 'TOKEN_EXPIRED'))).to.equal('login');
  });
});

describe('client outbox through bin/client (in-test gateway)', function () {
  this.timeout(60_000);
  let root: string;
  let certs: string;
  let fake: FakeGateway;
  let dataDir: string;

  before(() => {
    root = tempDir('client-outbox-cli-');
    certs = makeCerts(root);
  });

  beforeEach(async () => {
    fake = await FakeGateway.start(certs);
    fake.addUser('BankA', 'alice', 'alice-pw', 'EUR', 10_000n);
    fake.addUser('BankB', 'bob', 'bob-pw', 'EUR', 5_000n);
    dataDir = tempDir('client-outbox-data-');
  });

  afterEach(() => {
    fake.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  after(() => fs.rmSync(root, { recursive: true, force: true }));

  function cli(args: string[], options: { input?: string; gateway?: string } = {}) {
    const sets = [`tls.dir=${certs}`, `client.dataDir=${dataDir}`, `logging.dir=${path.join(root, 'logs')}`, 'client.retryBaseDelayMs=10'];
    return runBin('client', [...args, '--gateway', options.gateway ?? fake.address, ...sets.flatMap((s) => ['--set', s])], { input: options.input ?? '' });
  }

  it('holds a payment whose token the gateway refuses, and sends it once after login', async () => {
    expect((await cli(['login', 'BankA', 'alice', '--password', 'alice-pw'])).code).to.equal(0);
    fake.revokeAll();
    const t = await cli(['transfer', 'BankB', 'bob', '2.00']);
    expect(t.code).to.equal(3);
    expect(t.stderr).to.match(/payment #1 .* is kept in the offline queue .*log in again \(TOKEN_REVOKED\)/);
    const listed = JSON.parse((await cli(['queue', 'list', '--json'])).stdout).entries;
    expect(listed[0]).to.include({ state: 'needs_login', sent: false, cancellable: true });
    const l = await cli(['login', 'BankA', 'alice', '--password', 'alice-pw']);
    expect(l.code, l.stderr).to.equal(0);
    expect(l.stdout).to.match(/#1 .* committed: 2\.00 EUR/);
    const keys = fake.callsOf('CreateTransfer').map((c) => c.idempotencyKey);
    expect(keys).to.have.length(2);
    expect(new Set(keys).size).to.equal(1);
    expect(fake.balanceOf('BankB', 'bob')).to.equal(5_200n);
  });

  it('the interactive client resumes the queue, reports outcomes and shows the queue', async () => {
    expect((await cli(['login', 'BankA', 'alice', '--password', 'alice-pw'])).code).to.equal(0);
    const down = `localhost:${await freePort()}`;
    expect((await cli(['transfer', 'BankB', 'bob', '1.50'], { gateway: down })).code).to.equal(5);
    expect((await cli(['transfer', 'BankB', 'bob', '2.50'], { gateway: down })).code).to.equal(5);
    const r = await cli(['BankA', 'alice', 'alice-pw'], { input: '5\n4\n' });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/resuming the offline queue: 2 payments waiting/);
    expect(r.stdout).to.match(/\[queue\] #1 .* committed: 1\.50 EUR[\s\S]*\[queue\] #2 .* committed: 2\.50 EUR/);
    expect(r.stdout).to.match(/5\) offline queue/);
    expect(r.stdout).to.match(/waiting \(0\):\n {2}none/);
    expect(fake.balanceOf('BankB', 'bob')).to.equal(5_400n);
    expect(fake.callsOf('CreateTransfer')).to.have.length(2);
  });
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

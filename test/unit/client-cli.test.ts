import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { GatewayClient } from '../../src/client/gateway-client.js';
import { SESSION_FILE } from '../../src/client/session.js';
import { loadTls } from '../../src/tls/credentials.js';
import { runBin } from '../helpers/processes.js';
import { eventually } from '../helpers/cluster.js';
import { FakeGateway, makeCerts, tempDir } from './client-fake-gateway.js';
import { DEFAULT_CONFIG } from '../helpers/clock.js';

// bin/client as a child process against an in-test gateway over mutual TLS: real arguments, real
// stdout/stderr, real exit codes, real session files.

const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

describe('client CLI (bin/client against an in-test gateway)', function () {
  this.timeout(60_000);
  let root: string;
  let certs: string;
  let fake: FakeGateway;
  let dataDir: string;

  before(async () => {
    root = tempDir('client-cli-');
    certs = makeCerts(root);
  });

  beforeEach(async () => {
    fake = await FakeGateway.start(certs);
    fake.addUser('BankA', 'alice', 'alice-pw', 'EUR', 10_000n);
    fake.addUser('BankB', 'bob', 'bob-pw', 'EUR', 5_000n);
    fake.addUser('BankB', 'yuki', 'yuki-pw', 'JPY', 5_000n);
    dataDir = tempDir('client-data-');
  });

  afterEach(() => {
    fake.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  after(() => fs.rmSync(root, { recursive: true, force: true }));

  function cli(args: string[], options: { input?: string; gateway?: string; sets?: string[] } = {}) {
    const sets = [`tls.dir=${certs}`, `client.dataDir=${dataDir}`, `logging.dir=${path.join(root, 'logs')}`,
      'client.retryBaseDelayMs=10', ...(options.sets ?? [])];
    return runBin('client', [...args, '--gateway', options.gateway ?? fake.address, ...sets.flatMap((s) => ['--set', s])],
      { input: options.input ?? '' });
  }

  async function login(bank = 'BankA', user = 'alice', password = `${user}-pw`) {
    const r = await cli(['login', bank, user, '--password-stdin'], { input: `${password}\n` });
    expect(r.code, r.stderr).to.equal(0);
    return r;
  }

  const sessionPath = () => path.join(dataDir, SESSION_FILE);

  it('logs in, shows balance, transfers, shows status and history, logs out', async () => {
    const l = await login();
    expect(l.stdout).to.match(/logged in as BankA\/alice \(EUR\)/);
    expect(l.stderr).to.equal('');
    // Session at rest: owner-only folder and file, token not in clear.
    expect(fs.statSync(dataDir).mode & 0o777).to.equal(0o700);
    expect(fs.statSync(sessionPath()).mode & 0o777).to.equal(0o600);
    const [token] = fake.issuedTokens();
    expect(fs.readFileSync(sessionPath(), 'utf8')).to.not.include(token!.slice(4));

    const b = await cli(['balance']);
    expect(b.code, b.stderr).to.equal(0);
    expect(b.stdout).to.match(/balance:\s+100\.00 EUR/);
    expect(fake.callsOf('GetBalance')[0]!.authorization).to.equal(`Bearer ${token}`);

    const t = await cli(['transfer', 'BankB', 'bob', '12.50']);
    expect(t.code, t.stderr).to.equal(0);
    const key = /key: (\S+)/.exec(t.stdout)?.[1];
    expect(key).to.match(UUID_RE);
    expect(t.stdout).to.match(/committed: 12\.50 EUR from BankA\/alice to BankB\/bob/);
    const sent = fake.callsOf('CreateTransfer');
    expect(sent).to.have.length(1);
    expect(sent[0]!.idempotencyKey).to.equal(key);
    expect((sent[0]!.request as { amountMinor: bigint }).amountMinor).to.equal(1250n);
    expect(fake.balanceOf('BankB', 'bob')).to.equal(6250n);

    const s = await cli(['status', key!]);
    expect(s.code, s.stderr).to.equal(0);
    expect(s.stdout).to.match(/status:\s+committed/).and.match(/amount:\s+12\.50 EUR/).and.match(/to:\s+BankB\/bob/);

    const h = await cli(['history']);
    expect(h.code, h.stderr).to.equal(0);
    expect(h.stdout).to.match(/-12\.50 EUR\s+to\s+BankB\/bob\s+balance 87\.50 EUR/);

    const o = await cli(['logout']);
    expect(o.code, o.stderr).to.equal(0);
    expect(o.stdout).to.match(/logged out BankA\/alice/);
    expect(fake.tokenActive(token!)).to.equal(false);
    expect(fs.existsSync(sessionPath())).to.equal(false);

    const after = await cli(['balance']);
    expect(after.code).to.equal(3);
    expect(after.stderr).to.match(/^error: not logged in.*\(NOT_LOGGED_IN\)\n$/);
  });

  it('prints parseable JSON with minor units as strings and formatted decimals', async () => {
    const l = await cli(['login', 'BankA', 'alice', '--password', 'alice-pw', '--json']);
    expect(JSON.parse(l.stdout)).to.deep.include({ account: { bank: 'BankA', username: 'alice', currency: 'EUR' } });

    const b = JSON.parse((await cli(['balance', '--json'])).stdout);
    expect(b.account).to.include({ balanceMinor: '10000', balance: '100.00', availableMinor: '10000', currency: 'EUR' });

    const t1 = await cli(['--json', 'transfer', 'BankB', 'bob', '1.05']);
    expect(t1.code, t1.stderr).to.equal(0);
    const transfer = JSON.parse(t1.stdout).transfer;
    expect(transfer).to.include({ amountMinor: '105', amount: '1.05', currency: 'EUR', status: 'committed' });
    expect(transfer.idempotencyKey).to.match(UUID_RE);
    expect(transfer.to).to.deep.equal({ bank: 'BankB', username: 'bob' });
    await cli(['--json', 'transfer', 'BankB', 'bob', '2']);

    const page = JSON.parse((await cli(['history', '--json', '--page-size', '1'])).stdout);
    expect(page.entries).to.have.length(1);
    expect(page.entries[0]).to.include({ direction: 'debit', amountMinor: '200', amount: '2.00', balanceAfterMinor: '9695', balanceAfter: '96.95' });
    expect(page.nextPageToken).to.equal('1');
    const all = JSON.parse((await cli(['history', '--json', '--page-size', '1', '--all'])).stdout);
    expect(all.entries.map((e: { amount: string }) => e.amount)).to.deep.equal(['2.00', '1.05']);
    expect(all.nextPageToken).to.equal('');

    const status = JSON.parse((await cli(['status', transfer.idempotencyKey, '--json'])).stdout);
    expect(status.transfer).to.deep.equal(transfer);

    const refused = await cli(['transfer', 'BankB', 'bob', '1000', '--json']);
    expect(refused.code).to.equal(1);
    const err = JSON.parse(refused.stdout).error;
    expect(err).to.include({ code: 'FAILED_PRECONDITION', reason: 'INSUFFICIENT_FUNDS' });
    expect(err.idempotencyKey).to.match(UUID_RE);

    const out = JSON.parse((await cli(['logout', '--json'])).stdout);
    expect(out).to.deep.equal({ loggedOut: true, account: { bank: 'BankA', username: 'alice', currency: 'EUR' } });
  });

  it('sends the same idempotency key again with --key, and the money moves once', async () => {
    await login();
    const key = '0b6f3f1e-3c1c-4d7a-9a51-6f0d2f4f8a10';
    const first = await cli(['transfer', 'BankB', 'bob', '10', '--key', key]);
    const second = await cli(['transfer', 'BankB', 'bob', '10', '--key', key]);
    expect(first.code, first.stderr).to.equal(0);
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stdout).to.include(`key: ${key}`);
    // The outbox already holds this key's final outcome: it is reported, nothing is sent again.
    expect(second.stdout).to.match(/committed: 10\.00 EUR from BankA\/alice to BankB\/bob/);
    expect(fake.callsOf('CreateTransfer').map((c) => c.idempotencyKey)).to.deep.equal([key]);
    // A new client folder knows nothing of it: the gateway answers the replay with the first outcome.
    const other = tempDir('client-data-other-');
    const again = await cli(['login', 'BankA', 'alice', '--password-stdin'], { input: 'alice-pw\n', sets: [`client.dataDir=${other}`] });
    expect(again.code, again.stderr).to.equal(0);
    const third = await cli(['transfer', 'BankB', 'bob', '10', '--key', key], { sets: [`client.dataDir=${other}`] });
    expect(third.code, third.stderr).to.equal(0);
    expect(fake.callsOf('CreateTransfer').map((c) => c.idempotencyKey)).to.deep.equal([key, key]);
    fs.rmSync(other, { recursive: true, force: true });
    expect(fake.balanceOf('BankA', 'alice')).to.equal(9_000n);
  });

  it('exits 1 with one error line when the gateway refuses (INSUFFICIENT_FUNDS)', async () => {
    await login();
    const r = await cli(['transfer', 'BankB', 'bob', '100.01']);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/^error: transfer [0-9a-f-]{36} refused: insufficient funds \(INSUFFICIENT_FUNDS\)\n$/);
    const unknown = await cli(['transfer', 'BankC', 'carol', '1']);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.match(/\(ACCOUNT_NOT_FOUND\)/);
  });

  it('exits 2 on a bad amount, name, key or flag, and sends nothing', async () => {
    await login();
    const cases: [string[], RegExp][] = [
      [['transfer', 'BankB', 'bob', '12.345'], /2 decimal places.*\(INVALID_AMOUNT\)/],
      [['transfer', 'BankB', 'bob', 'abc'], /not an amount.*\(INVALID_AMOUNT\)/],
      [['transfer', 'BankB', 'bob', '0'], /greater than 0.*\(INVALID_AMOUNT\)/],
      [['transfer', 'BankB', 'bob', '-5'], /\(USAGE\)/],
      [['transfer', 'BankB', 'bob', '1', '--currency', 'XYZ'], /\(INVALID_CURRENCY\)/],
      [['transfer', 'BankB', 'bob', '1', '--key', 'not-a-uuid'], /\(INVALID_IDEMPOTENCY_KEY\)/],
      [['transfer', 'Bank B', 'bob', '1'], /not a valid bank name.*\(USAGE\)/],
      [['transfer', 'BankB', 'bob'], /missing arguments.*\(USAGE\)/],
      [['balance', '--page-size', '3'], /--page-size is not an option of balance/],
      [['history', '--page-size', '0'], /--page-size must be/],
      [['status', '1234'], /\(INVALID_IDEMPOTENCY_KEY\)/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).to.equal(2);
      expect(r.stderr, args.join(' ')).to.match(message);
    }
    expect(fake.callsOf('CreateTransfer')).to.have.length(0);
    expect(fake.callsOf('GetTransfer')).to.have.length(0);
    expect(fake.callsOf('ListTransactions')).to.have.length(0);
  });

  it('parses the amount in the account currency (JPY has no decimals)', async () => {
    await login('BankB', 'yuki');
    const bad = await cli(['transfer', 'BankB', 'bob', '1.5']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.match(/JPY has 0 decimal places/);
    const wrong = await cli(['transfer', 'BankB', 'bob', '150']);
    expect(wrong.code).to.equal(1);
    expect(wrong.stderr).to.match(/\(CURRENCY_MISMATCH\)/);
    expect(fake.callsOf('CreateTransfer')[0]!.request).to.deep.include({ amountMinor: 150n, currency: 'JPY' });
  });

  it('queues a transfer (exit 5) when the gateway is down, and queue run sends it once later', async () => {
    await login();
    const closedPort = await freePort();
    const down = `localhost:${closedPort}`;
    const t = await cli(['transfer', 'BankB', 'bob', '1'], { gateway: down });
    expect(t.code, t.stderr).to.equal(5);
    const key = /key: (\S+)/.exec(t.stdout)?.[1];
    expect(key).to.match(UUID_RE);
    expect(t.stdout).to.include('queued: will be sent when the gateway is reachable; run `bin/client queue run` or keep the interactive client open');
    expect(t.stdout).to.include(`cannot reach the gateway at ${down} (GATEWAY_UNREACHABLE)`);
    expect(t.stdout).to.include('bin/client queue cancel 1');
    expect(fs.statSync(path.join(dataDir, 'outbox.sqlite')).mode & 0o777).to.equal(0o600);
    const listed = JSON.parse((await cli(['queue', 'list', '--json'])).stdout);
    expect(listed.entries).to.have.length(1);
    expect(listed.entries[0]).to.include({ id: 1, idempotencyKey: key, state: 'pending', sent: false, cancellable: true, amountMinor: '100' });
    // The outbox depth and its bound, for monitoring.
    expect(listed).to.include({ waiting: 1, maxEntries: 1000 });
    // balance does not send the queue, but says it is waiting.
    const b = await cli(['balance']);
    expect(b.code, b.stderr).to.equal(0);
    expect(b.stderr).to.match(/note: 1 payments are waiting in the offline queue/);
    expect(fake.callsOf('CreateTransfer')).to.have.length(0);

    const run = await cli(['queue', 'run', '--until-empty', '--timeout-ms', '20000']);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.match(new RegExp(`#1 \\(key ${key}\\) committed: 1\\.00 EUR from BankA/alice to BankB/bob`));
    expect(run.stdout).to.include('the offline queue is empty');
    expect(fake.callsOf('CreateTransfer').map((c) => c.idempotencyKey)).to.deep.equal([key]);
    expect(fake.balanceOf('BankB', 'bob')).to.equal(5_100n);
    const shown = await cli(['queue', 'show', '1']);
    expect(shown.stdout).to.match(/state:\s+committed/);

    const l = await cli(['login', 'BankA', 'alice', '--password', 'x'], { gateway: down });
    expect(l.code).to.equal(4);
    // Logout that cannot reach the gateway keeps the session so it can be revoked later.
    const o = await cli(['logout'], { gateway: down });
    expect(o.code).to.equal(4);
    expect(o.stderr).to.match(/session is kept/);
    expect(fs.existsSync(sessionPath())).to.equal(true);
  });

  it('keeps a transfer whose answer was lost in doubt: not cancellable, resolved with GetTransfer', async () => {
    await login();
    fake.delayMs = 1500;
    const t = await cli(['transfer', 'BankB', 'bob', '3'], { sets: ['client.callTimeoutMs=300'] });
    expect(t.code, t.stderr).to.equal(5);
    expect(t.stdout).to.match(/did not answer in time \(GATEWAY_TIMEOUT\)/);
    expect(t.stdout).to.match(/in doubt/);
    const key = /key: (\S+)/.exec(t.stdout)?.[1];
    expect(fake.callsOf('CreateTransfer')).to.have.length(1);
    fake.delayMs = 0;
    // The gateway finishes the transfer whose answer the client never got.
    await eventually(async () => fake.balanceOf('BankB', 'bob') === 5_300n, 20_000, 'the delayed transfer being applied');
    const c = await cli(['queue', 'cancel', '1']);
    expect(c.code).to.equal(1);
    expect(c.stderr).to.match(/cannot be cancelled.*\(OUTBOX_NOT_CANCELLABLE\)/);
    const s = await cli(['status', key!]);
    expect(s.code, s.stderr).to.equal(0);
    expect(s.stdout).to.match(/status:\s+committed/);
    const run = await cli(['queue', 'run', '--until-empty']);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.match(/asking the gateway about #1/);
    expect(run.stdout).to.match(/#1 .* committed: 3\.00 EUR/);
    expect(fake.callsOf('GetTransfer').length).to.be.greaterThan(1);
    expect(fake.callsOf('CreateTransfer')).to.have.length(1);
    expect(fake.balanceOf('BankB', 'bob')).to.equal(5_300n);
  });

  it('cancels a never-sent entry; a full outbox refuses new payments (exit 1, OUTBOX_FULL)', async () => {
    await login();
    const down = `localhost:${await freePort()}`;
    const sets = ['client.outboxMaxEntries=2'];
    for (const amount of ['1', '2']) {
      expect((await cli(['transfer', 'BankB', 'bob', amount], { gateway: down, sets })).code).to.equal(5);
    }
    const full = await cli(['transfer', 'BankB', 'bob', '3'], { gateway: down, sets });
    expect(full.code).to.equal(1);
    expect(full.stderr).to.match(/^error: the offline queue is full \(2 payments waiting.*nothing was sent.*\(OUTBOX_FULL\)\n$/);
    const cancel = await cli(['queue', 'cancel', '1']);
    expect(cancel.code, cancel.stderr).to.equal(0);
    expect(cancel.stdout).to.match(/cancelled payment #1/);
    expect((await cli(['queue', 'cancel', '1'])).stderr).to.match(/already cancelled/);
    const run = await cli(['queue', 'run', '--until-empty']);
    expect(run.code, run.stdout).to.equal(0);
    expect(fake.callsOf('CreateTransfer').map((c) => (c.request as { amountMinor: bigint }).amountMinor)).to.deep.equal([200n]);
  });

  it('retries CreateTransfer on UNAVAILABLE with the same key, but never Login', async () => {
    await login();
    fake.failCreateTransfers = 2;
    const t = await cli(['transfer', 'BankB', 'bob', '7.00']);
    expect(t.code, t.stderr).to.equal(0);
    const keys = fake.callsOf('CreateTransfer').map((c) => c.idempotencyKey);
    expect(keys).to.have.length(3);
    expect(new Set(keys).size).to.equal(1);
    expect(t.stdout).to.include(`key: ${keys[0]}`);
    expect(fake.balanceOf('BankB', 'bob')).to.equal(5_700n);

    fake.failLogins = 1;
    const l = await cli(['login', 'BankA', 'alice', '--password', 'alice-pw']);
    expect(l.code).to.equal(4);
    expect(fake.callsOf('Login')).to.have.length(2); // the first login of this test, and one attempt
  });

  it('exits 3 for a wrong password, an expired session or a revoked token', async () => {
    const wrong = await cli(['login', 'BankA', 'alice', '--password-stdin'], { input: 'nope\n' });
    expect(wrong.code).to.equal(3);
    expect(wrong.stderr).to.match(/\(INVALID_CREDENTIALS\)/);
    expect(fs.existsSync(sessionPath())).to.equal(false);

    const noPassword = await cli(['login', 'BankA', 'alice']);
    expect(noPassword.code).to.equal(2);
    expect(noPassword.stderr).to.match(/--password-stdin/);

    fake.tokenTtlMs = 1;
    await login();
    const expired = await cli(['balance']);
    expect(expired.code).to.equal(3);
    expect(expired.stderr).to.equal('error: session expired, log in again (SESSION_EXPIRED)\n');
    expect(fs.existsSync(sessionPath())).to.equal(false);
    expect(fake.callsOf('GetBalance')).to.have.length(0);

    fake.tokenTtlMs = 3_600_000;
    await login();
    fake.revokeAll();
    const revoked = await cli(['transfer', 'BankB', 'bob', '1']);
    expect(revoked.code).to.equal(3);
    expect(revoked.stderr).to.match(/log in again \(TOKEN_REVOKED\)/);
    expect(fs.existsSync(sessionPath())).to.equal(false);

    // Logout of a session the gateway already revoked (it answers TOKEN_REVOKED): done, session deleted.
    await login();
    fake.revokeAll();
    const out = await cli(['logout']);
    expect(out.code, out.stderr).to.equal(0);
    expect(out.stdout).to.match(/logged out BankA\/alice/);
    expect(fake.callsOf('Logout').length).to.be.greaterThan(0);
    expect(fs.existsSync(sessionPath())).to.equal(false);
  });

  it('documents the exit codes in --help', async () => {
    const r = await runBin('client', ['--help']);
    expect(r.code).to.equal(0);
    for (const line of [/0\s+ok/, /1\s+request refused/, /2\s+usage/, /3\s+authentication/, /4\s+gateway unreachable/, /5\s+queued/]) {
      expect(r.stdout).to.match(line);
    }
  });

  it('runs the interactive menu from piped stdin', async () => {
    const input = ['1', '2', 'BankB', 'bob', '5.00', '2', 'BankB', 'bob', 'lots', '9', '3', '4', ''].join('\n');
    const r = await cli(['BankA', 'alice', 'alice-pw'], { input });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/logged in as BankA\/alice \(EUR\)/);
    expect(r.stdout).to.match(/1\) balance {2}2\) transfer {2}3\) history {2}4\) logout and quit/);
    expect(r.stdout).to.match(/balance:\s+100\.00 EUR/);
    expect(r.stdout).to.match(/amount \(EUR\): 5\.00/);
    const key = /key: (\S+)/.exec(r.stdout)?.[1];
    expect(r.stdout).to.match(/committed: 5\.00 EUR from BankA\/alice to BankB\/bob/);
    expect(fake.callsOf('CreateTransfer').map((c) => c.idempotencyKey)).to.deep.equal([key]);
    expect(r.stderr).to.match(/error: "lots" is not an amount.*\(INVALID_AMOUNT\)/);
    expect(r.stdout).to.match(/choose 1, 2, 3, 4 or 5/);
    expect(r.stdout).to.match(/-5\.00 EUR\s+to\s+BankB\/bob\s+balance 95\.00 EUR/);
    expect(r.stdout).to.match(/logged out BankA\/alice/);
    expect(fs.existsSync(sessionPath())).to.equal(false);
    expect(fake.issuedTokens().every((t) => !fake.tokenActive(t))).to.equal(true);
  });

  it('asks for missing login parts and pages history with "more? (y/n)"', async () => {
    // Eleven credits for alice, more than one menu page (10).
    const sdk = new GatewayClient({ address: fake.address, tls: loadTls(certs, 'client'),
      limits: { callTimeoutMs: 5000, retryMaxAttempts: 1, retryBaseDelayMs: 10, retryMaxDelayMs: 100, ...DEFAULT_CONFIG.grpc } });
    await sdk.login('BankB', 'bob', 'bob-pw');
    for (let i = 1; i <= 11; i++) {
      await sdk.transfer({ toBank: 'BankA', toUsername: 'alice', amountMinor: BigInt(i), currency: 'EUR', idempotencyKey: crypto.randomUUID() });
    }
    sdk.close();
    const r = await cli(['interactive'], { input: 'BankA\nalice\nalice-pw\n3\ny\n4\n' });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/bank: BankA\nusername: alice\npassword: \n/);
    expect(r.stdout).to.not.include('alice-pw');
    expect(r.stdout.match(/more\? \(y\/n\)/g)).to.have.length(1);
    expect(r.stdout.match(/\+0\.\d\d EUR\s+from BankB\/bob/g)).to.have.length(11);
  });
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

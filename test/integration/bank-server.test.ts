import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Status } from 'nice-grpc';
import { demoPassword, seed } from '../../src/bank/admin.js';
import { startBankServer, type RunningBank } from '../../src/bank/server.js';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { newId } from '../../src/core/ids.js';
import { BankServiceDefinition, EntryDirection, TransactionState, Vote } from '../../src/gen/bank/v1/bank.js';
import { createNodeClient, type NodeClient } from '../../src/grpc/client.js';
import { expectFailure } from '../helpers/expect-failure.js';
import { silentLogger } from '../../src/logging/logger.js';
import { loadTls } from '../../src/tls/credentials.js';
import { CALL_LIMITS } from '../helpers/cluster.js';
import { ROOT, runBin, startNode, stopNode } from '../helpers/processes.js';

// A real bank server (in-process, and as bin/bank processes) over mutual TLS on loopback port 0.


function debit(username: string, amountMinor: bigint, transactionId = newId()) {
  return { transactionId, username, amountMinor, currency: 'EUR', counterpartyBank: 'BankB', counterpartyUsername: 'bob' };
}

describe('bank server (in-process, mutual TLS)', function () {
  this.timeout(60_000);
  let dir: string;
  let config: Config;
  let bank: RunningBank;
  const clients: NodeClient<typeof BankServiceDefinition>[] = [];

  const connect = (identity: string) => {
    const c = createNodeClient(BankServiceDefinition, `localhost:${bank.port}`, loadTls(config.tls.dir, identity), silentLogger(), CALL_LIMITS);
    clients.push(c);
    return c.client;
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bank-it-'));
    execFileSync(path.join(ROOT, 'scripts/gen-certs.sh'), [path.join(dir, 'certs'), 'BankA'], { stdio: 'ignore' });
    config = ConfigSchema.parse({
      tls: { dir: path.join(dir, 'certs') },
      logging: { dir: path.join(dir, 'logs'), console: false },
      banks: { BankA: { host: '127.0.0.1', port: 0, dataDir: path.join(dir, 'BankA') } },
      bank: { historyPageSizeDefault: 2, historyPageSizeMax: 3 },
    });
    bank = await startBankServer(config, 'BankA', silentLogger());
    await seed(bank.ledger, 'BankA');
  });

  after(async () => {
    for (const c of clients) c.close();
    await bank?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('never overdraws under 60 parallel prepares on one account; the hold equals the YES votes', async () => {
    const gw = connect('gateway');
    const amount = 3_000n; // carol has 500.00 EUR: floor(50000 / 3000) = 16 can be held
    const requests = Array.from({ length: 60 }, () => debit('carol', amount));
    const votes = await Promise.all(requests.map((r) => gw.prepareDebit(r)));
    const yes = requests.filter((_r, i) => votes[i]?.vote === Vote.VOTE_YES);
    const no = votes.filter((v) => v.vote === Vote.VOTE_NO);
    expect(yes).to.have.length(16);
    expect(no).to.have.length(44);
    for (const v of no) expect(v.reason).to.equal('INSUFFICIENT_FUNDS');

    const held = amount * BigInt(yes.length);
    expect(bank.ledger.totals().heldMinor).to.equal(held);
    expect(await gw.getBalance({ username: 'carol' })).to.deep.equal({
      username: 'carol', currency: 'EUR', balanceMinor: 50_000n, availableMinor: 50_000n - held,
    });

    // Repeating the YES prepares in parallel answers YES again and holds nothing more.
    const again = await Promise.all(yes.map((r) => gw.prepareDebit(r)));
    expect(again.every((v) => v.vote === Vote.VOTE_YES)).to.equal(true);
    expect(bank.ledger.totals().heldMinor).to.equal(held);
    expect(bank.ledger.inDoubt(100)).to.have.length(16);

    const aborted = await Promise.all(yes.map((r) => gw.abort({ transactionId: r.transactionId })));
    expect(aborted.every((a) => a.state === TransactionState.TRANSACTION_STATE_ABORTED)).to.equal(true);
    expect(bank.ledger.totals().heldMinor).to.equal(0n);
    expect(bank.ledger.inDoubt(100)).to.deep.equal([]);
  });

  it('refuses a client certificate of the same CA that is not the gateway', async () => {
    const intruder = connect('intruder');
    await expectFailure(intruder.getBalance({ username: 'alice' }), Status.PERMISSION_DENIED, 'PEER_NOT_ALLOWED');
    await expectFailure(intruder.prepareDebit(debit('alice', 100n)), Status.PERMISSION_DENIED, 'PEER_NOT_ALLOWED');
    expect(bank.ledger.totals().heldMinor).to.equal(0n);
    // The bank's own certificate is not the gateway's either.
    await expectFailure(connect('BankA').getBalance({ username: 'alice' }), Status.PERMISSION_DENIED, 'PEER_NOT_ALLOWED');
  });

  it('authenticates with argon2id and answers unknown user and wrong password alike', async () => {
    const gw = connect('gateway');
    expect(await gw.authenticate({ username: 'alice', password: demoPassword('alice') }))
      .to.deep.equal({ username: 'alice', currency: 'EUR' });
    await expectFailure(gw.authenticate({ username: 'alice', password: 'wrong' }), Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
    await expectFailure(gw.authenticate({ username: 'mallory', password: 'x' }), Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
    await expectFailure(gw.authenticate({ username: 'alice', password: '' }), Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
  });

  it('refuses invalid input with INVALID_ARGUMENT and changes nothing', async () => {
    const gw = connect('gateway');
    const before = bank.ledger.totals();
    const tx = newId();
    await expectFailure(gw.prepareDebit(debit('alice', 0n, tx)), Status.INVALID_ARGUMENT, 'INVALID_AMOUNT');
    await expectFailure(gw.prepareDebit(debit('alice', -500n, tx)), Status.INVALID_ARGUMENT, 'INVALID_AMOUNT');
    await expectFailure(gw.prepareCredit({ ...debit('alice', 5n, tx), currency: 'XXX' }), Status.INVALID_ARGUMENT, 'INVALID_CURRENCY');
    await expectFailure(gw.prepareDebit(debit('alice', 5n, 'not-a-uuid')), Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT');
    await expectFailure(gw.prepareDebit(debit('', 5n, tx)), Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT');
    await expectFailure(gw.prepareDebit({ ...debit('alice', 5n, tx), counterpartyBank: 'a b' }), Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT');
    await expectFailure(gw.abort({ transactionId: '' }), Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT');
    expect(bank.ledger.totals()).to.deep.equal(before);
    expect(bank.ledger.txState(tx)).to.equal(undefined);
    expect(bank.ledger.inDoubt(100)).to.deep.equal([]);
  });

  it('answers NO votes as values and a commit of an unknown transaction as INTERNAL', async () => {
    const gw = connect('gateway');
    expect(await gw.prepareCredit({ ...debit('nobody', 5n) })).to.include({ vote: Vote.VOTE_NO, reason: 'ACCOUNT_NOT_FOUND' });
    expect(await gw.prepareDebit({ ...debit('alice', 5n), currency: 'USD' })).to.include({ vote: Vote.VOTE_NO, reason: 'CURRENCY_MISMATCH' });
    const tx = newId();
    expect(await gw.abort({ transactionId: tx })).to.deep.equal({ state: TransactionState.TRANSACTION_STATE_ABORTED });
    expect(await gw.prepareDebit(debit('alice', 5n, tx))).to.include({ vote: Vote.VOTE_NO, reason: 'TRANSACTION_ABORTED' });
    await expectFailure(gw.commit({ transactionId: newId() }), Status.INTERNAL, 'INTERNAL');
  });

  it('commits a prepared transfer once and pages the history newest first', async () => {
    const gw = connect('gateway');
    const ids: string[] = [];
    for (let i = 1; i <= 4; i++) {
      const r = { ...debit('alice', BigInt(i * 100)), counterpartyBank: 'BankA', counterpartyUsername: 'carol' };
      ids.push(r.transactionId);
      expect((await gw.prepareDebit(r)).vote).to.equal(Vote.VOTE_YES);
      expect((await gw.prepareCredit({ ...r, username: 'carol', counterpartyUsername: 'alice' })).vote).to.equal(Vote.VOTE_YES);
      expect(await gw.commit({ transactionId: r.transactionId })).to.deep.equal({ state: TransactionState.TRANSACTION_STATE_COMMITTED });
      expect(await gw.commit({ transactionId: r.transactionId })).to.deep.equal({ state: TransactionState.TRANSACTION_STATE_COMMITTED });
    }
    expect(await gw.getBalance({ username: 'alice' })).to.include({ balanceMinor: 99_000n, availableMinor: 99_000n });

    const first = await gw.listTransactions({ username: 'alice', pageSize: 0, pageToken: '' });
    expect(first.entries.map((e) => e.transactionId)).to.deep.equal([ids[3], ids[2]]); // default page size 2
    expect(first.entries[0]).to.include({
      direction: EntryDirection.ENTRY_DIRECTION_DEBIT, amountMinor: 400n, balanceAfterMinor: 99_000n, counterpartyUsername: 'carol',
    });
    expect(first.entries[0]?.createTime).to.be.instanceOf(Date);
    const second = await gw.listTransactions({ username: 'alice', pageSize: 50, pageToken: first.nextPageToken });
    expect(second.entries.map((e) => e.transactionId)).to.deep.equal([ids[1], ids[0]]); // capped at 3, only 2 left
    expect(second.nextPageToken).to.equal('');

    await expectFailure(gw.listTransactions({ username: 'alice', pageSize: 1, pageToken: 'garbage!' }), Status.INVALID_ARGUMENT, 'INVALID_PAGE_TOKEN');
    await expectFailure(gw.listTransactions({ username: 'alice', pageSize: -1, pageToken: '' }), Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT');
    await expectFailure(gw.listTransactions({ username: 'nobody', pageSize: 1, pageToken: '' }), Status.NOT_FOUND, 'ACCOUNT_NOT_FOUND');
    await expectFailure(gw.getBalance({ username: 'nobody' }), Status.NOT_FOUND, 'ACCOUNT_NOT_FOUND');
  });
});

describe('bin/bank', function () {
  this.timeout(90_000);
  let dir: string;
  let configPath: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bank-bin-'));
    execFileSync(path.join(ROOT, 'scripts/gen-certs.sh'), [path.join(dir, 'certs'), 'BankB'], { stdio: 'ignore' });
    configPath = path.join(dir, 'config.json');
    fs.writeFileSync(configPath, JSON.stringify({
      tls: { dir: path.join(dir, 'certs') },
      logging: { dir: path.join(dir, 'logs'), console: false },
      banks: { BankB: { host: '127.0.0.1', port: 0, dataDir: path.join(dir, 'BankB') } },
    }));
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const bank = (...args: string[]) => runBin('bank', [...args, '--config', configPath]);

  it('seeds idempotently, adds users, refuses duplicates and unknown banks', async () => {
    const s1 = await bank('seed', '--name', 'BankB');
    expect(s1.code, s1.stderr).to.equal(0);
    expect(s1.stdout).to.contain('bob: created').and.contain('dave: created');
    const s2 = await bank('seed', '--name', 'BankB');
    expect(s2.stdout).to.contain('bob: already exists');

    const add = await runBin('bank', ['add-user', '--config', configPath, '--name', 'BankB', '--user', 'erin',
      '--currency', 'EUR', '--balance', '12.34', '--password-stdin'], { input: 'erin-secret\n' });
    expect(add.code, add.stderr).to.equal(0);
    const dup = await bank('add-user', '--name', 'BankB', '--user', 'erin', '--currency', 'EUR', '--balance', '1', '--password', 'p');
    expect(dup.code).to.equal(1);
    expect(dup.stderr).to.contain('already exists');
    const bad = await bank('add-user', '--name', 'BankB', '--user', 'zed', '--currency', 'EUR', '--balance', '1.234', '--password', 'p');
    expect(bad.code).to.equal(2);

    const total = await bank('total', '--name', 'BankB', '--json');
    expect(JSON.parse(total.stdout)).to.include({ bank: 'BankB', accounts: 3, balanceMinor: '126234', heldMinor: '0' });

    const unknown = await bank('--name', 'BankZ');
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.contain('BankZ');
    expect(fs.existsSync(path.join(dir, 'logs', 'BankZ.log'))).to.equal(false);
    for (const f of fs.readdirSync(path.join(dir, 'BankB'))) {
      expect(fs.readFileSync(path.join(dir, 'BankB', f)).includes('erin-secret')).to.equal(false);
    }
  });

  it('serves on an ephemeral port, lists in-doubt transactions and stops on SIGTERM', async () => {
    const node = await startNode('bank', 'BankB', ['--config', configPath, '--name', 'BankB']);
    const c = createNodeClient(BankServiceDefinition, `localhost:${node.port}`, loadTls(path.join(dir, 'certs'), 'gateway'), silentLogger(), CALL_LIMITS);
    try {
      const tx = newId();
      expect((await c.client.prepareDebit({ ...debit('bob', 2_500n, tx), counterpartyBank: 'BankA', counterpartyUsername: 'alice' })).vote)
        .to.equal(Vote.VOTE_YES);
      const doubt = await bank('in-doubt', '--name', 'BankB', '--json');
      const parsed = JSON.parse(doubt.stdout) as { transactions: { txId: string; legs: { kind: string; amountMinor: string }[] }[] };
      expect(parsed.transactions.map((t) => t.txId)).to.deep.equal([tx]);
      expect(parsed.transactions[0]?.legs[0]).to.include({ kind: 'debit', amountMinor: '2500' });
      expect((await bank('in-doubt', '--name', 'BankB')).stdout).to.contain(tx).and.contain('25.00 EUR');
      expect(JSON.parse((await bank('total', '--name', 'BankB', '--json')).stdout)).to.include({ heldMinor: '2500' });
    } finally {
      c.close();
      expect(await stopNode(node)).to.equal(0);
    }
    const log = fs.readFileSync(path.join(dir, 'logs', 'BankB.log'), 'utf8');
    expect(log).to.contain('bank stopped');
    expect(log).to.not.contain('bob-pass');
  });
});

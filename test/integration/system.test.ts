import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { ClientError, Metadata, Status } from 'nice-grpc';
import { TransferStatus, EntryDirection } from '../../src/gen/payments/v1/gateway.js';
import { Vote } from '../../src/gen/bank/v1/bank.js';
import { reasonOf } from '../../src/grpc/errors.js';
import { expectFailure } from '../helpers/expect-failure.js';
import { bearer, Cluster, eventually } from '../helpers/cluster.js';

// The whole system as processes: two banks and a gateway over mutual TLS on loopback.
// After every scenario the sum of all balances is unchanged and no hold is left behind.

describe('system: gateway + two banks over mTLS', function () {
  this.timeout(60_000);
  let cluster: Cluster;
  let startTotal: bigint;
  let alice: Metadata;

  before(async () => {
    cluster = await Cluster.create({ banks: ['BankA', 'BankB'], gateway: { prepareTimeoutMs: 2000 } });
    await cluster.addUser('BankA', 'alice', 'EUR', '1000.00');
    await cluster.addUser('BankA', 'carol', 'EUR', '500.00');
    await cluster.addUser('BankB', 'bob', 'EUR', '1000.00');
    await cluster.addUser('BankB', 'dave', 'EUR', '250.00');
    await cluster.addUser('BankB', 'yuki', 'JPY', '10000');
    await cluster.startAll();
    startTotal = (await cluster.totals()).balanceMinor;
    alice = (await cluster.login('BankA', 'alice')).metadata;
  });

  afterEach(async () => {
    if (!cluster) return;
    // Money is conserved and nothing stays held once the scenario has settled.
    await eventually(async () => (await cluster.totals()).heldMinor === 0n);
    const t = await cluster.totals();
    expect(t.balanceMinor).to.equal(startTotal);
  });

  after(async () => {
    await cluster?.close();
  });

  const gw = () => cluster.gatewayClient();
  const transfer = (metadata: Metadata, to: [string, string], amountMinor: bigint, key: string = randomUUID(), currency = 'EUR') =>
    gw().createTransfer({ idempotencyKey: key, toBank: to[0], toUsername: to[1], amountMinor, currency }, { metadata });

  it('logs in and reads the balance', async () => {
    const res = await gw().login({ bank: 'BankA', username: 'alice', password: cluster.passwordOf('BankA', 'alice') });
    expect(res.accessToken).to.be.a('string').with.length.greaterThan(0);
    expect(res.account?.currency).to.equal('EUR');
    expect(res.expireTime!.getTime()).to.be.greaterThan(Date.now());
    const bal = await gw().getBalance({}, { metadata: bearer(res.accessToken) });
    expect(bal.account).to.include({ bank: 'BankA', username: 'alice', currency: 'EUR' });
    expect(bal.account?.balanceMinor).to.equal(100000n);
  });

  it('refuses a wrong password and an unknown bank', async () => {
    await expectFailure(gw().login({ bank: 'BankA', username: 'alice', password: 'nope' }), Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
    await expectFailure(gw().login({ bank: 'BankA', username: 'nobody', password: 'nope' }), Status.UNAUTHENTICATED, 'INVALID_CREDENTIALS');
    await expectFailure(gw().login({ bank: 'NoBank', username: 'alice', password: 'x' }), Status.NOT_FOUND, 'BANK_NOT_FOUND');
  });

  it('moves money across banks atomically', async () => {
    const before = { a: await cluster.balanceOf('BankA', 'alice'), b: await cluster.balanceOf('BankB', 'bob') };
    const res = await transfer(alice, ['BankB', 'bob'], 1250n);
    expect(res.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    expect(res.transfer).to.include({ fromBank: 'BankA', fromUsername: 'alice', toBank: 'BankB', toUsername: 'bob', amountMinor: 1250n });
    await eventually(async () => (await cluster.balanceOf('BankB', 'bob')).balanceMinor === before.b.balanceMinor + 1250n);
    expect((await cluster.balanceOf('BankA', 'alice')).balanceMinor).to.equal(before.a.balanceMinor - 1250n);
  });

  it('moves money within one bank atomically', async () => {
    const before = { a: await cluster.balanceOf('BankA', 'alice'), c: await cluster.balanceOf('BankA', 'carol') };
    const res = await transfer(alice, ['BankA', 'carol'], 700n);
    expect(res.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    await eventually(async () => (await cluster.balanceOf('BankA', 'carol')).balanceMinor === before.c.balanceMinor + 700n);
    expect((await cluster.balanceOf('BankA', 'alice')).balanceMinor).to.equal(before.a.balanceMinor - 700n);
  });

  it('replays a transfer by its idempotency key: same outcome, applied once', async () => {
    const key = randomUUID();
    const before = (await cluster.balanceOf('BankA', 'alice')).balanceMinor;
    const first = await transfer(alice, ['BankB', 'dave'], 300n, key);
    const again = await transfer(alice, ['BankB', 'dave'], 300n, key);
    const concurrent = await Promise.all([1, 2, 3].map(() => transfer(alice, ['BankB', 'dave'], 300n, key)));
    expect(again.transfer?.transactionId).to.equal(first.transfer?.transactionId);
    for (const c of concurrent) expect(c.transfer?.transactionId).to.equal(first.transfer?.transactionId);
    await eventually(async () => (await cluster.balanceOf('BankA', 'alice')).balanceMinor === before - 300n);
    const got = await gw().getTransfer({ idempotencyKey: key }, { metadata: alice });
    expect(got.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_COMMITTED);
    // The same key from another user is another transfer namespace: not found for bob.
    const bob = (await cluster.login('BankB', 'bob')).metadata;
    await expectFailure(gw().getTransfer({ idempotencyKey: key }, { metadata: bob }), Status.NOT_FOUND, 'TRANSFER_NOT_FOUND');
  });

  it('refuses a key reused with other parameters, and changes nothing', async () => {
    const key = randomUUID();
    await transfer(alice, ['BankB', 'bob'], 100n, key);
    const before = (await cluster.balanceOf('BankA', 'alice')).balanceMinor;
    await expectFailure(transfer(alice, ['BankB', 'bob'], 101n, key), Status.ALREADY_EXISTS, 'IDEMPOTENCY_KEY_REUSED');
    await expectFailure(transfer(alice, ['BankB', 'dave'], 100n, key), Status.ALREADY_EXISTS, 'IDEMPOTENCY_KEY_REUSED');
    expect((await cluster.balanceOf('BankA', 'alice')).balanceMinor).to.equal(before);
  });

  it('refuses insufficient funds, and replays that refusal', async () => {
    const dave = (await cluster.login('BankB', 'dave')).metadata;
    const key = randomUUID();
    const before = (await cluster.balanceOf('BankB', 'dave')).balanceMinor;
    await expectFailure(transfer(dave, ['BankA', 'alice'], before + 1n, key), Status.FAILED_PRECONDITION, 'INSUFFICIENT_FUNDS');
    await expectFailure(transfer(dave, ['BankA', 'alice'], before + 1n, key), Status.FAILED_PRECONDITION, 'INSUFFICIENT_FUNDS');
    const got = await gw().getTransfer({ idempotencyKey: key }, { metadata: dave });
    expect(got.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_ABORTED);
    expect(got.transfer?.failureReason).to.equal('INSUFFICIENT_FUNDS');
    expect((await cluster.balanceOf('BankB', 'dave')).balanceMinor).to.equal(before);
  });

  it('refuses an unknown destination user and a currency mismatch; nothing moves', async () => {
    const before = (await cluster.balanceOf('BankA', 'alice')).balanceMinor;
    await expectFailure(transfer(alice, ['BankB', 'nobody'], 100n), Status.NOT_FOUND, 'ACCOUNT_NOT_FOUND');
    await expectFailure(transfer(alice, ['BankB', 'yuki'], 100n), Status.FAILED_PRECONDITION, 'CURRENCY_MISMATCH');
    await expectFailure(transfer(alice, ['BankB', 'bob'], 100n, randomUUID(), 'USD'), Status.FAILED_PRECONDITION, 'CURRENCY_MISMATCH');
    await expectFailure(transfer(alice, ['NoBank', 'bob'], 100n), Status.NOT_FOUND, 'BANK_NOT_FOUND');
    expect((await cluster.balanceOf('BankA', 'alice')).balanceMinor).to.equal(before);
  });

  it('refuses bad input with INVALID_ARGUMENT and stores nothing', async () => {
    await expectFailure(transfer(alice, ['BankB', 'bob'], 0n), Status.INVALID_ARGUMENT, 'INVALID_AMOUNT');
    await expectFailure(transfer(alice, ['BankB', 'bob'], -5n), Status.INVALID_ARGUMENT, 'INVALID_AMOUNT');
    await expectFailure(transfer(alice, ['BankB', 'bob'], 10n ** 15n), Status.INVALID_ARGUMENT, 'AMOUNT_TOO_LARGE');
    await expectFailure(transfer(alice, ['BankB', 'bob'], 1n, 'not-a-uuid'), Status.INVALID_ARGUMENT, 'INVALID_IDEMPOTENCY_KEY');
    await expectFailure(transfer(alice, ['BankA', 'alice'], 1n), Status.INVALID_ARGUMENT, 'SAME_ACCOUNT');
    const key = randomUUID();
    await expectFailure(transfer(alice, ['BankB', 'bob'], 1n, key, 'EURO'), Status.INVALID_ARGUMENT, 'INVALID_CURRENCY');
    // Validation failures are not stored: the key is still free.
    await expectFailure(gw().getTransfer({ idempotencyKey: key }, { metadata: alice }), Status.NOT_FOUND);
  });

  it('pages history newest first, and only the caller’s own', async () => {
    const carol = (await cluster.login('BankA', 'carol')).metadata;
    const amounts = [11n, 12n, 13n, 14n, 15n];
    for (const a of amounts) await transfer(carol, ['BankB', 'bob'], a);
    const seen: bigint[] = [];
    let pageToken = '';
    for (let i = 0; i < 20; i++) {
      const page = await gw().listTransactions({ pageSize: 2, pageToken }, { metadata: carol });
      expect(page.entries.length).to.be.at.most(2);
      seen.push(...page.entries.filter((e) => e.direction === EntryDirection.ENTRY_DIRECTION_DEBIT).map((e) => e.amountMinor));
      pageToken = page.nextPageToken;
      if (!pageToken) break;
    }
    expect(seen.slice(0, 5)).to.deep.equal([...amounts].reverse());
    await expectFailure(gw().listTransactions({ pageSize: 2, pageToken: '!!bad' }, { metadata: carol }), Status.INVALID_ARGUMENT);
  });

  it('refuses missing, garbage and revoked tokens', async () => {
    await expectFailure(gw().getBalance({}), Status.UNAUTHENTICATED, 'TOKEN_MISSING');
    await expectFailure(gw().getBalance({}, { metadata: bearer('garbage.token.here') }), Status.UNAUTHENTICATED, 'TOKEN_INVALID');
    const { metadata, token } = await cluster.login('BankA', 'carol');
    // One signature character that carries six bits (the last one also carries padding bits,
    // which a decoder ignores: changing it alone may leave the signature as it was).
    const at = token.length - 10;
    const tampered = token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
    await expectFailure(gw().getBalance({}, { metadata: bearer(tampered) }), Status.UNAUTHENTICATED, 'TOKEN_INVALID');
    await gw().logout({}, { metadata });
    await expectFailure(gw().getBalance({}, { metadata }), Status.UNAUTHENTICATED, 'TOKEN_REVOKED');
    await expectFailure(transfer(metadata, ['BankB', 'bob'], 1n), Status.UNAUTHENTICATED, 'TOKEN_REVOKED');
  });

  it('keeps a revoked token revoked across a gateway restart', async () => {
    const { metadata } = await cluster.login('BankB', 'dave');
    await gw().logout({}, { metadata });
    await cluster.stopGateway();
    await cluster.startGateway();
    await expectFailure(gw().getBalance({}, { metadata }), Status.UNAUTHENTICATED, 'TOKEN_REVOKED');
    // Tokens issued before the restart stay valid (the signing key is durable).
    const bal = await gw().getBalance({}, { metadata: alice });
    expect(bal.account?.username).to.equal('alice');
  });

  it('a bank refuses a client certificate that is not the gateway’s', async () => {
    const intruder = cluster.bankClient('BankA', 'intruder');
    const e = await expectFailure(intruder.getBalance({ username: 'alice' }), Status.PERMISSION_DENIED, 'PEER_NOT_ALLOWED');
    expect(e.details).to.match(/intruder/);
    await expectFailure(
      intruder.prepareDebit({ transactionId: randomUUID(), username: 'alice', amountMinor: 1n, currency: 'EUR', counterpartyBank: 'BankB', counterpartyUsername: 'bob' }),
      Status.PERMISSION_DENIED,
    );
    // The gateway's client API admits client certificates only: test/integration/security.test.ts.
  });

  it('aborts when a bank is down before prepare: no money moves, the other hold is released', async () => {
    const before = { a: await cluster.balanceOf('BankA', 'alice') };
    await cluster.stopBank('BankB', 'SIGKILL');
    try {
      const key = randomUUID();
      // BANK_UNAVAILABLE, not PREPARE_TIMEOUT: refused on the failed connection, not at the deadline.
      await expectFailure(transfer(alice, ['BankB', 'bob'], 500n, key), Status.UNAVAILABLE, 'BANK_UNAVAILABLE');
      const got = await gw().getTransfer({ idempotencyKey: key }, { metadata: alice });
      expect(got.transfer?.status).to.equal(TransferStatus.TRANSFER_STATUS_ABORTED);
      await eventually(async () => {
        const a = await cluster.balanceOf('BankA', 'alice');
        return a.availableMinor === a.balanceMinor;
      });
      expect((await cluster.balanceOf('BankA', 'alice')).balanceMinor).to.equal(before.a.balanceMinor);
    } finally {
      await cluster.startBank('BankB');
    }
    // The bank is back: once the gateway's channel has reconnected (bounded backoff), transfers
    // flow again. Each try is a new transfer (a new key): a refused key keeps its refusal.
    await eventually(async () => {
      try {
        const ok = await transfer(alice, ['BankB', 'bob'], 5n);
        return ok.transfer?.status === TransferStatus.TRANSFER_STATUS_COMMITTED;
      } catch (e) {
        if (reasonOf(e) !== 'BANK_UNAVAILABLE') throw e;
        return false;
      }
    });
  });

  it('survives many concurrent transfers between all accounts', async () => {
    const sessions = {
      alice, carol: (await cluster.login('BankA', 'carol')).metadata,
      bob: (await cluster.login('BankB', 'bob')).metadata, dave: (await cluster.login('BankB', 'dave')).metadata,
    };
    const where: Record<string, string> = { alice: 'BankA', carol: 'BankA', bob: 'BankB', dave: 'BankB' };
    const names = Object.keys(sessions) as (keyof typeof sessions)[];
    const jobs = Array.from({ length: 60 }, (_, i) => {
      const from = names[i % 4]!;
      const to = names[(i + 1 + (i % 3)) % 4]!;
      return transfer(sessions[from], [where[to]!, to], BigInt(1 + (i % 7) * 1000)).then(
        () => 'ok',
        (e: ClientError) => reasonOf(e) ?? Status[e.code],
      );
    });
    const results = await Promise.all(jobs);
    for (const r of results) expect(['ok', 'INSUFFICIENT_FUNDS']).to.include(r);
    expect(results.filter((r) => r === 'ok').length).to.be.greaterThan(30);
  });

  it('answers a prepare with the vote for a transaction the bank has aborted (hanging)', async () => {
    const bank = cluster.bankClient('BankA');
    const tx = randomUUID();
    await bank.abort({ transactionId: tx });
    const vote = await bank.prepareDebit({ transactionId: tx, username: 'alice', amountMinor: 1n, currency: 'EUR', counterpartyBank: 'BankB', counterpartyUsername: 'bob' });
    expect(vote.vote).to.equal(Vote.VOTE_NO);
    expect(vote.reason).to.equal('TRANSACTION_ABORTED');
  });
});

describe('system: token expiry', function () {
  this.timeout(60_000);
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create({ banks: ['BankA'], gateway: { tokenTtlSeconds: 1 } });
    await cluster.addUser('BankA', 'erin', 'EUR', '10.00');
    await cluster.startAll();
  });
  after(async () => cluster?.close());

  it('refuses an expired token with TOKEN_EXPIRED', async () => {
    const { metadata, token } = await cluster.login('BankA', 'erin');
    const gw = cluster.gatewayClient();
    // The token lives 1 s of the gateway's wall clock: on a busy machine it may be gone before a
    // first call, so none is required to see it valid. It was issued for those 1 s, though.
    const claims = decodeJwt(token);
    expect(claims.exp! - claims.iat!).to.equal(1);
    // Until the gateway's own clock passes the token's expiry; any other refusal fails the test.
    let answer = '';
    await eventually(async () => {
      try {
        await gw.getBalance({}, { metadata });
        answer = 'OK';
      } catch (err) {
        answer = `${reasonOf(err) ?? String(err)}`;
      }
      if (answer !== 'OK' && answer !== 'TOKEN_EXPIRED') throw new Error(`refused with ${answer}, not TOKEN_EXPIRED`);
      return answer === 'TOKEN_EXPIRED';
    }, 20_000, 'the token expiring');
    await expectFailure(gw.getBalance({}, { metadata }), Status.UNAUTHENTICATED, 'TOKEN_EXPIRED');
  });
});

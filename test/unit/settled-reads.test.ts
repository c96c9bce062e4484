import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { systemClock } from '../../src/core/clock.js';
import { AppError } from '../../src/core/errors.js';
import { newId } from '../../src/core/ids.js';
import { Ledger } from '../../src/bank/ledger.js';
import { bankService } from '../../src/bank/service.js';
import { LegKind } from '../../src/gen/bank/v1/bank.js';
import { DEFAULT_CONFIG } from '../helpers/clock.js';

// The gateway answers COMMITTED at its durable decision, before the banks apply it. A bank's
// balance and history reads therefore wait for the account's legs prepared before them
// (src/bank/settled-reads.ts): real ledger in a temp dir, the bank service called directly.

describe('settled reads: a balance read waits for the legs prepared before it', () => {
  let dir: string;
  let ledger: Ledger;
  const ctx = {} as never;
  const credit = (txId: string, amountMinor: bigint) => ({
    legs: [{ transactionId: txId, kind: LegKind.LEG_KIND_CREDIT, username: 'bob', amountMinor, currency: 'EUR', counterpartyBank: 'BankA', counterpartyUsername: 'alice' }],
  });
  const service = (overrides: Partial<typeof DEFAULT_CONFIG.bank> = {}) =>
    bankService(ledger, { ...DEFAULT_CONFIG.bank, ...overrides }, systemClock);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-reads-'));
    ledger = Ledger.open(path.join(dir, 'BankB'));
    ledger.createAccount({ username: 'bob', passwordHash: 'x', currency: 'EUR', balanceMinor: 100n });
    ledger.createAccount({ username: 'carol', passwordHash: 'x', currency: 'EUR', balanceMinor: 0n });
  });
  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers once the prepared credit is committed, with it applied; history likewise', async () => {
    const bank = service();
    const t1 = newId();
    await bank.prepareBatch(credit(t1, 25n), ctx);
    const events: string[] = [];
    const balance = bank.getBalance({ username: 'bob' }, ctx).then((b) => {
      events.push(`balance ${b.balanceMinor}`);
      return b;
    });
    const history = bank.listTransactions({ username: 'bob', pageSize: 0, pageToken: '' }, ctx).then((h) => {
      events.push(`history ${h.entries?.length ?? 0}`);
      return h;
    });
    // Another account's read does not wait.
    expect((await bank.getBalance({ username: 'carol' }, ctx)).balanceMinor).to.equal(0n);
    expect(events, 'bob\'s reads answered before the commit').to.deep.equal([]);
    await bank.commitBatch({ transactionIds: [t1] }, ctx);
    expect((await balance).balanceMinor).to.equal(125n);
    expect(((await history).entries ?? []).map((e) => e.transactionId)).to.deep.equal([t1]);
  });

  it('does not wait for a leg prepared after the read arrived, nor after an abort', async () => {
    const bank = service();
    const t1 = newId();
    await bank.prepareBatch(credit(t1, 10n), ctx);
    const read = bank.getBalance({ username: 'bob' }, ctx);
    const t2 = newId();
    await bank.prepareBatch(credit(t2, 5n), ctx);
    await bank.abortBatch({ transactionIds: [t1] }, ctx);
    // t2 is still prepared, but it came after the read: the read answers.
    expect(await read).to.deep.include({ balanceMinor: 100n, availableMinor: 100n });
  });

  it('answers what the ledger holds after readSettleWaitMaxMs when the leg stays in doubt', async () => {
    const bank = service({ readSettleWaitMaxMs: 20 });
    await bank.prepareBatch(credit(newId(), 10n), ctx);
    expect((await bank.getBalance({ username: 'bob' }, ctx)).balanceMinor).to.equal(100n);
  });

  it('never waits with readSettleWaitMaxMs 0; beyond readSettleWaitersMax a waiting read is BANK_BUSY', async () => {
    await service({ readSettleWaitMaxMs: 0 }).prepareBatch(credit(newId(), 10n), ctx);
    expect((await service({ readSettleWaitMaxMs: 0 }).getBalance({ username: 'bob' }, ctx)).balanceMinor).to.equal(100n);
    const bank = service({ readSettleWaitMaxMs: 200, readSettleWaitersMax: 1 });
    const first = bank.getBalance({ username: 'bob' }, ctx);
    const refused = await bank.getBalance({ username: 'bob' }, ctx).then(() => undefined, (err: unknown) => err);
    expect(refused).to.be.instanceOf(AppError);
    expect((refused as AppError).reason).to.equal('BANK_BUSY');
    expect((await first).balanceMinor).to.equal(100n);
  });
});

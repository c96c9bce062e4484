import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { AssertionError } from '../../src/core/assert.js';
import { newId } from '../../src/core/ids.js';
import { Ledger } from '../../src/bank/ledger.js';
import { decodePageToken, encodePageToken } from '../../src/bank/page-token.js';
import type { Leg, LegKind } from '../../src/bank/participant.js';

// The ledger against a real SQLite file in a temp dir. Password hashes are placeholders: these
// tests never authenticate.

function leg(txId: string, kind: LegKind, username: string, amountMinor: bigint, over: Partial<Leg> = {}): Leg {
  return {
    txId, kind, username, amountMinor, currency: 'EUR',
    counterpartyBank: 'BankB', counterpartyUsername: 'bob', ...over,
  };
}

describe('bank ledger', () => {
  let dir: string;
  let ledger: Ledger;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ledger-'));
    ledger = Ledger.open(path.join(dir, 'BankA'));
    ledger.createAccount({ username: 'alice', passwordHash: 'x', currency: 'EUR', balanceMinor: 100_000n });
    ledger.createAccount({ username: 'carol', passwordHash: 'x', currency: 'EUR', balanceMinor: 50_000n });
    ledger.createAccount({ username: 'yuki', passwordHash: 'x', currency: 'JPY', balanceMinor: 1_000n });
  });

  afterEach(() => {
    ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const balances = (u: string) => {
    const a = ledger.account(u);
    if (!a) throw new Error(`no ${u}`);
    return { balance: a.balanceMinor, held: a.heldMinor };
  };

  it('creates the data dir private to the user and refuses a duplicate account', () => {
    expect(fs.statSync(path.join(dir, 'BankA')).mode & 0o777).to.equal(0o700);
    expect(ledger.createAccount({ username: 'alice', passwordHash: 'y', currency: 'EUR', balanceMinor: 1n })).to.equal('exists');
    expect(balances('alice').balance).to.equal(100_000n);
  });

  it('prepare holds, commit applies once, repeated commit changes nothing', () => {
    const tx = newId();
    expect(ledger.prepare(leg(tx, 'debit', 'alice', 2_500n))).to.deep.equal({ ok: true, value: 'insert' });
    expect(balances('alice')).to.deep.equal({ balance: 100_000n, held: 2_500n });
    expect(ledger.txState(tx)).to.equal('prepared');

    expect(ledger.commit(tx)).to.equal('committed');
    expect(balances('alice')).to.deep.equal({ balance: 97_500n, held: 0n });
    expect(ledger.commit(tx)).to.equal('committed');
    expect(balances('alice')).to.deep.equal({ balance: 97_500n, held: 0n });

    const page = ledger.history('alice', 10);
    if (!page.ok) throw new Error(page.message);
    expect(page.value.entries).to.have.length(1);
    expect(page.value.entries[0]).to.include({ txId: tx, direction: 'debit', amountMinor: 2_500n, balanceAfterMinor: 97_500n });
  });

  it('a late duplicate prepare after commit votes YES and changes nothing', () => {
    const tx = newId();
    ledger.prepare(leg(tx, 'debit', 'alice', 2_500n));
    ledger.commit(tx);
    expect(ledger.prepare(leg(tx, 'debit', 'alice', 2_500n))).to.deep.equal({ ok: true, value: 'repeat' });
    expect(balances('alice')).to.deep.equal({ balance: 97_500n, held: 0n });
    const other = ledger.prepare(leg(tx, 'credit', 'alice', 1n));
    expect(other).to.include({ ok: false, reason: 'TRANSACTION_CONFLICT' });
  });

  it('prepare repeated with the same parameters does not double-hold', () => {
    const tx = newId();
    ledger.prepare(leg(tx, 'debit', 'alice', 60_000n));
    // Available is now 40,000 < 60,000, but the repeat is answered from the stored leg.
    expect(ledger.prepare(leg(tx, 'debit', 'alice', 60_000n))).to.deep.equal({ ok: true, value: 'repeat' });
    expect(balances('alice').held).to.equal(60_000n);
  });

  it('the same tx and leg with other parameters is a conflict', () => {
    const tx = newId();
    ledger.prepare(leg(tx, 'debit', 'alice', 1_000n));
    expect(ledger.prepare(leg(tx, 'debit', 'alice', 1_001n))).to.include({ ok: false, reason: 'TRANSACTION_CONFLICT' });
    expect(ledger.prepare(leg(tx, 'debit', 'carol', 1_000n))).to.include({ ok: false, reason: 'TRANSACTION_CONFLICT' });
    expect(ledger.prepare(leg(tx, 'debit', 'alice', 1_000n, { counterpartyUsername: 'dave' })))
      .to.include({ ok: false, reason: 'TRANSACTION_CONFLICT' });
    expect(balances('alice').held).to.equal(1_000n);
    expect(balances('carol').held).to.equal(0n);
  });

  it('votes NO for insufficient funds, currency mismatch and unknown accounts, holding nothing', () => {
    const t1 = newId();
    expect(ledger.prepare(leg(t1, 'debit', 'alice', 100_001n))).to.include({ ok: false, reason: 'INSUFFICIENT_FUNDS' });
    expect(ledger.txState(t1)).to.equal(undefined);
    expect(ledger.prepare(leg(newId(), 'debit', 'yuki', 10n))).to.include({ ok: false, reason: 'CURRENCY_MISMATCH' });
    expect(ledger.prepare(leg(newId(), 'credit', 'yuki', 10n))).to.include({ ok: false, reason: 'CURRENCY_MISMATCH' });
    expect(ledger.prepare(leg(newId(), 'credit', 'nobody', 10n))).to.include({ ok: false, reason: 'ACCOUNT_NOT_FOUND' });
    expect(ledger.prepare(leg(newId(), 'debit', 'nobody', 10n))).to.include({ ok: false, reason: 'ACCOUNT_NOT_FOUND' });
    expect(ledger.totals()).to.include({ heldMinor: 0n });
    expect(ledger.inDoubt(10)).to.deep.equal([]);
  });

  it('exact available funds may be held; one more minor unit may not', () => {
    ledger.prepare(leg(newId(), 'debit', 'carol', 30_000n));
    expect(ledger.prepare(leg(newId(), 'debit', 'carol', 20_001n))).to.include({ ok: false, reason: 'INSUFFICIENT_FUNDS' });
    expect(ledger.prepare(leg(newId(), 'debit', 'carol', 20_000n))).to.include({ ok: true });
    expect(balances('carol')).to.deep.equal({ balance: 50_000n, held: 50_000n });
  });

  it('abort releases the hold and repeats; commit after abort is an assertion', () => {
    const tx = newId();
    ledger.prepare(leg(tx, 'debit', 'alice', 7_000n));
    expect(ledger.abort(tx)).to.equal('aborted');
    expect(balances('alice')).to.deep.equal({ balance: 100_000n, held: 0n });
    expect(ledger.abort(tx)).to.equal('aborted');
    expect(balances('alice')).to.deep.equal({ balance: 100_000n, held: 0n });
    expect(() => ledger.commit(tx)).to.throw(AssertionError);
    expect(ledger.prepare(leg(tx, 'debit', 'alice', 7_000n))).to.include({ ok: false, reason: 'TRANSACTION_ABORTED' });
  });

  it('empty rollback leaves a tombstone that refuses a late (hanging) prepare', () => {
    const tx = newId();
    expect(ledger.abort(tx)).to.equal('aborted');
    expect(ledger.txState(tx)).to.equal('aborted');
    expect(ledger.prepare(leg(tx, 'debit', 'alice', 1_000n))).to.include({ ok: false, reason: 'TRANSACTION_ABORTED' });
    expect(ledger.prepare(leg(tx, 'credit', 'alice', 1_000n))).to.include({ ok: false, reason: 'TRANSACTION_ABORTED' });
    expect(balances('alice')).to.deep.equal({ balance: 100_000n, held: 0n });
    expect(ledger.abort(tx)).to.equal('aborted');
  });

  it('commit of an unknown transaction and abort of a committed one are assertions', () => {
    expect(() => ledger.commit(newId())).to.throw(AssertionError, /never prepared/);
    const tx = newId();
    ledger.prepare(leg(tx, 'credit', 'alice', 5n));
    ledger.commit(tx);
    expect(() => ledger.abort(tx)).to.throw(AssertionError, /committed/);
    expect(balances('alice').balance).to.equal(100_005n);
  });

  it('a same-bank transfer holds both legs in one transaction and applies them together', () => {
    const tx = newId();
    const debit = leg(tx, 'debit', 'alice', 12_345n, { counterpartyBank: 'BankA', counterpartyUsername: 'carol' });
    const credit = leg(tx, 'credit', 'carol', 12_345n, { counterpartyBank: 'BankA', counterpartyUsername: 'alice' });
    expect(ledger.prepare(debit)).to.include({ ok: true });
    expect(ledger.prepare(credit)).to.include({ ok: true });
    const doubt = ledger.inDoubt(10);
    expect(doubt).to.have.length(1);
    expect(doubt[0]?.legs.map((l) => l.kind)).to.deep.equal(['debit', 'credit']);
    expect(balances('carol')).to.deep.equal({ balance: 50_000n, held: 0n });

    ledger.commit(tx);
    ledger.commit(tx);
    expect(balances('alice')).to.deep.equal({ balance: 87_655n, held: 0n });
    expect(balances('carol')).to.deep.equal({ balance: 62_345n, held: 0n });
    const carol = ledger.history('carol', 10);
    if (!carol.ok) throw new Error(carol.message);
    expect(carol.value.entries).to.have.length(1);
    expect(carol.value.entries[0]).to.include({ direction: 'credit', counterpartyUsername: 'alice', balanceAfterMinor: 62_345n });
    expect(ledger.inDoubt(10)).to.deep.equal([]);
  });

  it('aborting a same-bank transfer releases only the debit hold', () => {
    const tx = newId();
    ledger.prepare(leg(tx, 'debit', 'alice', 500n));
    ledger.prepare(leg(tx, 'credit', 'carol', 500n));
    ledger.abort(tx);
    expect(balances('alice')).to.deep.equal({ balance: 100_000n, held: 0n });
    expect(balances('carol')).to.deep.equal({ balance: 50_000n, held: 0n });
  });

  it('paginates history newest first across pages', () => {
    const ids: string[] = [];
    for (let i = 1; i <= 7; i++) {
      const tx = newId();
      ids.push(tx);
      ledger.prepare(leg(tx, i % 2 ? 'debit' : 'credit', 'alice', BigInt(i)));
      ledger.commit(tx);
    }
    const seen: string[] = [];
    let before: bigint | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = ledger.history('alice', 3, before);
      if (!page.ok) throw new Error(page.message);
      seen.push(...page.value.entries.map((e) => e.txId));
      before = page.value.nextBeforeSeq;
      if (before === undefined) break;
      // The token round-trips through its opaque form.
      const decoded = decodePageToken(encodePageToken(before));
      expect(decoded).to.deep.equal({ ok: true, value: before });
    }
    expect(seen).to.deep.equal([...ids].reverse());
    expect(ledger.history('nobody', 3)).to.include({ ok: false, reason: 'ACCOUNT_NOT_FOUND' });
  });

  it('refuses malformed page tokens', () => {
    for (const bad of ['', '!!', 'abc', encodePageToken(0n), Buffer.from('-5').toString('base64url'),
      Buffer.from('12x').toString('base64url'), Buffer.from('99999999999999999999').toString('base64url')]) {
      expect(decodePageToken(bad), bad).to.include({ ok: false, reason: 'INVALID_PAGE_TOKEN' });
    }
  });

  it('conserves money: totals move only by committed legs between banks', () => {
    const before = ledger.totals();
    expect(before).to.include({ accounts: 3, balanceMinor: 151_000n, heldMinor: 0n });
    // Same-bank transfer: no change in total; cross-bank debit: total falls by the amount.
    const same = newId();
    ledger.prepare(leg(same, 'debit', 'alice', 1_000n, { counterpartyBank: 'BankA', counterpartyUsername: 'carol' }));
    ledger.prepare(leg(same, 'credit', 'carol', 1_000n, { counterpartyBank: 'BankA', counterpartyUsername: 'alice' }));
    const cross = newId();
    ledger.prepare(leg(cross, 'debit', 'carol', 2_000n));
    expect(ledger.totals()).to.include({ balanceMinor: 151_000n, heldMinor: 3_000n });
    ledger.commit(same);
    ledger.commit(cross);
    const after = ledger.totals();
    expect(after).to.include({ balanceMinor: 149_000n, heldMinor: 0n });
    expect(after.byCurrency.EUR).to.deep.equal({ accounts: 2, balanceMinor: 148_000n, heldMinor: 0n });
    expect(after.byCurrency.JPY).to.deep.equal({ accounts: 1, balanceMinor: 1_000n, heldMinor: 0n });
  });

  it('keeps everything across a reopen', () => {
    const tx = newId();
    ledger.prepare(leg(tx, 'debit', 'alice', 400n));
    ledger.close();
    ledger = Ledger.open(path.join(dir, 'BankA'));
    expect(ledger.inDoubt(10).map((t) => t.txId)).to.deep.equal([tx]);
    expect(balances('alice').held).to.equal(400n);
    ledger.commit(tx);
    expect(balances('alice')).to.deep.equal({ balance: 99_600n, held: 0n });
  });
});

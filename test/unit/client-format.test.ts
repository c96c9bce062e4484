import { expect } from 'chai';
import { amountOf, pageSizeOf } from '../../src/client/commands/args.js';
import { ClientFailure } from '../../src/client/failure.js';
import { balanceJson, historyEntryJson, money, transferJson, transferOutcomeText } from '../../src/client/format.js';
import { formatAmount } from '../../src/core/money.js';

// Amounts at the CLI edge: typed decimals -> bigint minor units -> printed decimals, per currency.

describe('client amount parsing and formatting', () => {
  it('round-trips typed amounts through minor units', () => {
    const cases: [string, string, bigint, string][] = [
      ['12.50', 'EUR', 1250n, '12.50 EUR'],
      ['12.5', 'EUR', 1250n, '12.50 EUR'],
      ['0.01', 'USD', 1n, '0.01 USD'],
      ['7', 'EUR', 700n, '7.00 EUR'],
      ['1500', 'JPY', 1500n, '1500 JPY'],
      ['1.234', 'KWD', 1234n, '1.234 KWD'],
      ['92233720368547758.07', 'EUR', 9223372036854775807n, '92233720368547758.07 EUR'],
    ];
    for (const [typed, currency, minor, shown] of cases) {
      expect(amountOf(typed, currency), typed).to.equal(minor);
      expect(money(minor, currency)).to.equal(shown);
      expect(amountOf(formatAmount(minor, currency), currency)).to.equal(minor);
    }
  });

  it('refuses zero, garbage, too many decimals and unknown currencies with a reason', () => {
    const cases: [string, string, string][] = [
      ['0', 'EUR', 'INVALID_AMOUNT'],
      ['0.00', 'EUR', 'INVALID_AMOUNT'],
      ['1.005', 'EUR', 'INVALID_AMOUNT'],
      ['1.5', 'JPY', 'INVALID_AMOUNT'],
      ['1,50', 'EUR', 'INVALID_AMOUNT'],
      ['1e3', 'EUR', 'INVALID_AMOUNT'],
      ['99999999999999999999', 'EUR', 'AMOUNT_TOO_LARGE'],
      ['1', 'XXX', 'INVALID_CURRENCY'],
    ];
    for (const [typed, currency, reason] of cases) {
      try {
        amountOf(typed, currency);
        expect.fail(`${typed} ${currency} accepted`);
      } catch (err) {
        expect(err).to.be.instanceOf(ClientFailure);
        expect((err as ClientFailure).reason, typed).to.equal(reason);
        expect((err as ClientFailure).code).to.equal('INVALID_ARGUMENT');
      }
    }
  });

  it('checks page sizes', () => {
    expect(pageSizeOf(undefined)).to.equal(undefined);
    expect(pageSizeOf('25')).to.equal(25);
    for (const bad of ['0', '-1', '1.5', 'x', '1001', '99999']) expect(() => pageSizeOf(bad), bad).to.throw(ClientFailure);
  });

  it('prints JSON with minor units as strings next to formatted decimals', () => {
    const big = 9007199254740993n; // not representable as a JS number
    expect(balanceJson({ bank: 'BankA', username: 'a', currency: 'EUR', balanceMinor: big, availableMinor: 5n })).to.deep.equal({
      bank: 'BankA', username: 'a', currency: 'EUR',
      balanceMinor: '9007199254740993', balance: '90071992547409.93', availableMinor: '5', available: '0.05',
    });
    const t = {
      transactionId: 'tx', idempotencyKey: 'k', from: { bank: 'A', username: 'a' }, to: { bank: 'B', username: 'b' },
      amountMinor: 1250n, currency: 'EUR', status: 'committed' as const, createdAt: new Date(Date.UTC(2025, 0, 2, 3, 4, 5)),
    };
    expect(JSON.parse(JSON.stringify(transferJson(t)))).to.deep.include({ amountMinor: '1250', amount: '12.50', createTime: '2025-01-02T03:04:05.000Z' });
    expect(transferOutcomeText(t)).to.equal('committed: 12.50 EUR from A/a to B/b (transaction tx)');
    expect(historyEntryJson({
      transactionId: 'tx', direction: 'credit', amountMinor: 5n, currency: 'JPY', counterparty: { bank: 'A', username: 'a' }, balanceAfterMinor: 105n,
    })).to.deep.include({ amountMinor: '5', amount: '5', balanceAfterMinor: '105', balanceAfter: '105', createTime: null });
  });
});

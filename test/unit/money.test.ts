import { expect } from 'chai';
import { formatAmount, INT64_MAX, parseAmount } from '../../src/core/money.js';

describe('money', () => {
  it('parses decimals into minor units by currency exponent', () => {
    expect(parseAmount('12.50', 'EUR')).to.deep.equal({ ok: true, value: 1250n });
    expect(parseAmount('12.5', 'EUR')).to.deep.equal({ ok: true, value: 1250n });
    expect(parseAmount('12', 'EUR')).to.deep.equal({ ok: true, value: 1200n });
    expect(parseAmount('0.01', 'USD')).to.deep.equal({ ok: true, value: 1n });
    expect(parseAmount('500', 'JPY')).to.deep.equal({ ok: true, value: 500n });
    expect(parseAmount('1.234', 'KWD')).to.deep.equal({ ok: true, value: 1234n });
  });

  it('refuses malformed amounts with a reason', () => {
    for (const bad of ['-1', '1e3', '1.', '.5', 'abc', '', '1,00', '0x10', ' 1.0.0']) {
      const r = parseAmount(bad, 'EUR');
      expect(r.ok, bad).to.equal(false);
      if (!r.ok) expect(r.reason).to.equal('INVALID_AMOUNT');
    }
    const tooPrecise = parseAmount('1.001', 'EUR');
    expect(tooPrecise.ok).to.equal(false);
    if (!tooPrecise.ok) expect(tooPrecise.message).to.match(/2 decimal places/);
    const yen = parseAmount('1.5', 'JPY');
    expect(yen.ok).to.equal(false);
    const cur = parseAmount('1', 'XXX');
    expect(cur.ok).to.equal(false);
    if (!cur.ok) expect(cur.reason).to.equal('INVALID_CURRENCY');
    const huge = parseAmount('99999999999999999999', 'EUR');
    expect(huge.ok).to.equal(false);
    if (!huge.ok) expect(huge.reason).to.equal('AMOUNT_TOO_LARGE');
  });

  it('formats minor units as decimals and round-trips', () => {
    expect(formatAmount(1250n, 'EUR')).to.equal('12.50');
    expect(formatAmount(5n, 'EUR')).to.equal('0.05');
    expect(formatAmount(0n, 'EUR')).to.equal('0.00');
    expect(formatAmount(-1250n, 'EUR')).to.equal('-12.50');
    expect(formatAmount(500n, 'JPY')).to.equal('500');
    expect(formatAmount(INT64_MAX, 'EUR')).to.equal('92233720368547758.07');
    for (const v of [0n, 1n, 99n, 100n, 123456789n, INT64_MAX]) {
      const r = parseAmount(formatAmount(v, 'EUR'), 'EUR');
      expect(r).to.deep.equal({ ok: true, value: v });
    }
  });
});

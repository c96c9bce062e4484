import { expect } from 'chai';
import type { Result } from '../../src/core/errors.js';
import {
  PASSWORD_MAX_CHARS,
  pageSizeOf,
  validateCreateTransfer,
  validateIdempotencyKey,
  validateLogin,
  type TransferRequestFields,
  type TransferRules,
} from '../../src/gateway/validate.js';

const KEY = '3f1c2a9e-5b7d-4c11-9a2e-8d6f0b4e7a13';
const PAYER = { bank: 'BankA', username: 'alice' };
const RULES: TransferRules = {
  maxTransferAmountMinor: 100_000_000n,
  isKnownBank: (b) => b === 'BankA' || b === 'BankB',
};
const GOOD: TransferRequestFields = {
  idempotencyKey: KEY,
  toBank: 'BankB',
  toUsername: 'bob',
  amountMinor: 1250n,
  currency: 'EUR',
};

function reason<T>(r: Result<T>): string {
  return r.ok ? 'OK' : r.reason;
}

function transfer(changes: Partial<TransferRequestFields>, payer = PAYER): string {
  return reason(validateCreateTransfer({ ...GOOD, ...changes }, payer, RULES));
}

describe('validate', () => {
  describe('validateCreateTransfer', () => {
    it('accepts a good request and names the recipient', () => {
      const r = validateCreateTransfer(GOOD, PAYER, RULES);
      expect(r).to.deep.equal({
        ok: true,
        value: { idempotencyKey: KEY, to: { bank: 'BankB', username: 'bob' }, amountMinor: 1250n, currency: 'EUR' },
      });
    });

    it('needs a UUID idempotency key: INVALID_IDEMPOTENCY_KEY', () => {
      expect(transfer({ idempotencyKey: '' })).to.equal('INVALID_IDEMPOTENCY_KEY');
      expect(transfer({ idempotencyKey: 'order-42' })).to.equal('INVALID_IDEMPOTENCY_KEY');
      expect(transfer({ idempotencyKey: `${KEY}x` })).to.equal('INVALID_IDEMPOTENCY_KEY');
    });

    it('treats an upper-case UUID as the same key', () => {
      const r = validateCreateTransfer({ ...GOOD, idempotencyKey: KEY.toUpperCase() }, PAYER, RULES);
      expect(r.ok && r.value.idempotencyKey).to.equal(KEY);
    });

    it('needs valid recipient names: INVALID_ARGUMENT', () => {
      expect(transfer({ toBank: '' })).to.equal('INVALID_ARGUMENT');
      expect(transfer({ toBank: 'Bank/B' })).to.equal('INVALID_ARGUMENT');
      expect(transfer({ toUsername: '' })).to.equal('INVALID_ARGUMENT');
      expect(transfer({ toUsername: 'bob smith' })).to.equal('INVALID_ARGUMENT');
      expect(transfer({ toUsername: 'x'.repeat(65) })).to.equal('INVALID_ARGUMENT');
    });

    it('needs a positive amount: INVALID_AMOUNT', () => {
      expect(transfer({ amountMinor: 0n })).to.equal('INVALID_AMOUNT');
      expect(transfer({ amountMinor: -1n })).to.equal('INVALID_AMOUNT');
      expect(transfer({ amountMinor: 1n })).to.equal('OK');
    });

    it('caps the amount: AMOUNT_TOO_LARGE', () => {
      expect(transfer({ amountMinor: 100_000_000n })).to.equal('OK');
      expect(transfer({ amountMinor: 100_000_001n })).to.equal('AMOUNT_TOO_LARGE');
      expect(transfer({ amountMinor: 9223372036854775807n })).to.equal('AMOUNT_TOO_LARGE');
    });

    it('needs a known currency: INVALID_CURRENCY', () => {
      expect(transfer({ currency: '' })).to.equal('INVALID_CURRENCY');
      expect(transfer({ currency: 'XYZ' })).to.equal('INVALID_CURRENCY');
      expect(transfer({ currency: 'eur' })).to.equal('INVALID_CURRENCY');
      expect(transfer({ currency: 'JPY' })).to.equal('OK');
    });

    it('refuses a transfer to the paying account: SAME_ACCOUNT', () => {
      expect(transfer({ toBank: 'BankA', toUsername: 'alice' })).to.equal('SAME_ACCOUNT');
      expect(transfer({ toBank: 'BankA', toUsername: 'bob' })).to.equal('OK');
      expect(transfer({ toBank: 'BankB', toUsername: 'alice' })).to.equal('OK');
    });

    it('needs a bank that discovery knows: BANK_NOT_FOUND', () => {
      expect(transfer({ toBank: 'BankZ' })).to.equal('BANK_NOT_FOUND');
    });
  });

  describe('validateIdempotencyKey', () => {
    it('accepts a UUID and refuses anything else', () => {
      expect(reason(validateIdempotencyKey(KEY))).to.equal('OK');
      expect(reason(validateIdempotencyKey('nope'))).to.equal('INVALID_IDEMPOTENCY_KEY');
    });
  });

  describe('validateLogin', () => {
    const login = { bank: 'BankA', username: 'alice', password: 'secret' };
    it('accepts names and a password', () => {
      expect(reason(validateLogin(login))).to.equal('OK');
    });
    it('refuses bad names, an empty and an over-long password: INVALID_ARGUMENT', () => {
      expect(reason(validateLogin({ ...login, bank: '' }))).to.equal('INVALID_ARGUMENT');
      expect(reason(validateLogin({ ...login, username: 'a/b' }))).to.equal('INVALID_ARGUMENT');
      expect(reason(validateLogin({ ...login, password: '' }))).to.equal('INVALID_ARGUMENT');
      expect(reason(validateLogin({ ...login, password: 'p'.repeat(PASSWORD_MAX_CHARS) }))).to.equal('OK');
      expect(reason(validateLogin({ ...login, password: 'p'.repeat(PASSWORD_MAX_CHARS + 1) }))).to.equal('INVALID_ARGUMENT');
    });
  });

  describe('pageSizeOf', () => {
    const limits = { historyPageSizeDefault: 20, historyPageSizeMax: 100 };
    it('uses the default for 0, caps large sizes, refuses negative ones', () => {
      expect(pageSizeOf(0, limits)).to.deep.equal({ ok: true, value: 20 });
      expect(pageSizeOf(5, limits)).to.deep.equal({ ok: true, value: 5 });
      expect(pageSizeOf(1000, limits)).to.deep.equal({ ok: true, value: 100 });
      expect(reason(pageSizeOf(-1, limits))).to.equal('INVALID_ARGUMENT');
    });
  });
});

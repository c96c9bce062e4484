import { clip } from './clip.js';
import { fail, ok, type Result } from './errors.js';

// Money is integer minor units (bigint). Decimal strings exist only at the CLI edge.

/** Minor-unit exponent per ISO 4217 currency we accept. */
export const CURRENCY_EXPONENTS: Readonly<Record<string, number>> = {
  EUR: 2, USD: 2, GBP: 2, CHF: 2, SEK: 2, NOK: 2, DKK: 2, PLN: 2, CZK: 2, CAD: 2, AUD: 2,
  JPY: 0, KRW: 0, ISK: 0,
  KWD: 3, BHD: 3, JOD: 3,
};

/** Largest amount representable as a protobuf int64. */
export const INT64_MAX = 9223372036854775807n;

export function isCurrency(code: string): boolean {
  return Object.prototype.hasOwnProperty.call(CURRENCY_EXPONENTS, code);
}

export function exponentOf(currency: string): number {
  const e = CURRENCY_EXPONENTS[currency];
  if (e === undefined) throw new Error(`unknown currency ${currency}`);
  return e;
}

/** Parses "12.50" (EUR) into 1250n. Refuses signs, exponents, extra decimals and garbage. */
export function parseAmount(text: string, currency: string): Result<bigint> {
  if (!isCurrency(currency)) return fail('INVALID_CURRENCY', `unknown currency "${clip(currency)}"`);
  const exp = exponentOf(currency);
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!m) return fail('INVALID_AMOUNT', `"${clip(text)}" is not an amount; write it like 12.50`);
  const whole = m[1] ?? '0';
  const frac = m[2] ?? '';
  if (frac.length > exp) {
    return fail('INVALID_AMOUNT', `${currency} has ${exp} decimal place${exp === 1 ? '' : 's'}; "${clip(text)}" has ${frac.length}`);
  }
  const minor = BigInt(whole) * 10n ** BigInt(exp) + BigInt(frac.padEnd(exp, '0') || '0');
  if (minor > INT64_MAX) return fail('AMOUNT_TOO_LARGE', `"${clip(text)}" is too large`);
  return ok(minor);
}

/** Formats 1250n (EUR) as "12.50"; negative amounts keep their sign. */
export function formatAmount(minor: bigint, currency: string): string {
  const exp = isCurrency(currency) ? exponentOf(currency) : 2;
  const neg = minor < 0n;
  const abs = neg ? -minor : minor;
  const s = abs.toString().padStart(exp + 1, '0');
  const whole = exp === 0 ? s : s.slice(0, s.length - exp);
  const frac = exp === 0 ? '' : `.${s.slice(s.length - exp)}`;
  return `${neg ? '-' : ''}${whole}${frac}`;
}

import { isUuid, isName } from '../../core/ids.js';
import { isCurrency, parseAmount } from '../../core/money.js';
import { ClientFailure, usageFailure } from '../failure.js';

// Checks of command-line input. Each throws a ClientFailure (exit code 2) before anything is sent.

/** Options of every subcommand, as parsed by node:util parseArgs. */
export interface CommandFlags {
  readonly password?: string;
  readonly 'password-stdin'?: boolean;
  readonly key?: string;
  readonly currency?: string;
  readonly 'page-size'?: string;
  readonly 'page-token'?: string;
  readonly all?: boolean;
  readonly 'until-empty'?: boolean;
  readonly 'timeout-ms'?: string;
}

export function expectArgs(args: readonly string[], count: number, synopsis: string): string[] {
  if (args.length !== count) {
    throw usageFailure(`${args.length < count ? 'missing' : 'too many'} arguments; usage: bin/client ${synopsis}`);
  }
  return [...args];
}

export function checkName(value: string, what: string): string {
  if (!isName(value)) throw usageFailure(`"${value}" is not a valid ${what} (letters, digits, _ . -; at most 64)`);
  return value;
}

export function checkKey(value: string): string {
  if (!isUuid(value)) {
    throw new ClientFailure('INVALID_ARGUMENT', 'INVALID_IDEMPOTENCY_KEY', `"${value}" is not a UUID idempotency key`);
  }
  return value;
}

export function checkCurrency(value: string): string {
  if (!isCurrency(value)) throw new ClientFailure('INVALID_ARGUMENT', 'INVALID_CURRENCY', `unknown currency "${value}"`);
  return value;
}

/** Decimal text ("12.50") to minor units in `currency`; refuses zero. */
export function amountOf(text: string, currency: string): bigint {
  const parsed = parseAmount(text, currency);
  if (!parsed.ok) throw new ClientFailure('INVALID_ARGUMENT', parsed.reason, parsed.message);
  if (parsed.value === 0n) throw new ClientFailure('INVALID_ARGUMENT', 'INVALID_AMOUNT', 'amount must be greater than 0');
  return parsed.value;
}

/** Largest page the gateway could ever be asked for (its cap is gateway.historyPageSizeMax). */
export const PAGE_SIZE_MAX = 1000;

export function pageSizeOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d{1,4}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= PAGE_SIZE_MAX)) throw usageFailure(`--page-size must be a whole number from 1 to ${PAGE_SIZE_MAX}`);
  return n;
}

import type { CallContext } from 'nice-grpc-common';
import { clip } from '../core/clip.js';
import { AppError } from '../core/errors.js';
import type { AccountRef, Identity } from '../core/transfer.js';
import type { Discovery } from '../discovery/discovery.js';
import {
  GatewayServiceDefinition,
  type GatewayServiceImplementation,
  type LoginRequest,
} from '../gen/payments/v1/gateway.js';
import type { Logger } from '../logging/logger.js';
import type { AuthContext } from '../middleware/server/auth.js';
import { peerOf } from '../tls/peer-identity.js';
import { callBank } from './bank-errors.js';
import type { BankClient } from './bank-clients.js';
import { toAccount, toHistoryEntry, toTransfer } from './convert.js';
import type { Transfers } from './transfers.js';
import type { IssuedToken } from './tokens.js';
import type { LoginGate } from './login-throttle.js';
import { pageSizeOf, validateCreateTransfer, validateIdempotencyKey, validateLogin } from './validate.js';

// The client-facing GatewayService. Every method but Login runs behind the auth middleware and acts
// only on the caller's own account: the account always comes from the verified token, never from
// the request.

const methodPath = (name: string) => `/${GatewayServiceDefinition.fullName}/${name}`;

/** Callable without a token. */
export const GATEWAY_PUBLIC_METHODS: ReadonlySet<string> = new Set([methodPath(GatewayServiceDefinition.methods.login.name)]);

export interface GatewayServiceDeps {
  readonly banks: { get(bank: string): BankClient | undefined };
  readonly discovery: Pick<Discovery, 'bank' | 'bankNames'>;
  readonly transfers: Transfers;
  readonly tokens: { issue(account: AccountRef): Promise<IssuedToken> };
  /** Durable (at every gateway instance, for a shared list) when the returned value settles. */
  readonly revocations: { revoke(tokenId: string, expiresAtMs: number): void | Promise<void> };
  /** Asked before the bank: refuses logins of accounts and callers with too many failures. */
  readonly loginThrottle: LoginGate;
  /** Audit of failed logins. */
  readonly logger: Logger;
  readonly limits: {
    /** Decimal string (int64), as in config. */
    readonly maxTransferAmountMinor: string;
    readonly historyPageSizeDefault: number;
    readonly historyPageSizeMax: number;
  };
}

export type GatewayService = GatewayServiceImplementation<{ auth: Identity }>;

export function createGatewayService(deps: GatewayServiceDeps): GatewayService {
  const maxTransferAmountMinor = BigInt(deps.limits.maxTransferAmountMinor);
  // Known: reachable now, or named by discovery without a healthy instance (then UNAVAILABLE, not NOT_FOUND).
  const isKnownBank = (bank: string) => deps.discovery.bank(bank) !== undefined || deps.discovery.bankNames().includes(bank);

  /** The client of the caller's own bank; it was known at login, so losing it is an outage. */
  function ownBank(account: AccountRef): BankClient {
    const client = deps.banks.get(account.bank);
    if (!client) throw new AppError('BANK_UNAVAILABLE', `bank ${account.bank} is unavailable; try again later`);
    return client;
  }

  return {
    // Public: the context carries no caller, and the type says so.
    async login(request: LoginRequest, context: CallContext) {
      const input = validateLogin(request);
      if (!input.ok) throw AppError.from(input);
      const { bank, username, password } = input.value;
      const client = deps.banks.get(bank);
      if (!client) {
        if (isKnownBank(bank)) throw new AppError('BANK_UNAVAILABLE', `bank ${bank} is unavailable; try again later`);
        throw new AppError('BANK_NOT_FOUND', `no bank named "${bank}"`);
      }
      const peer = callerOf(context);
      const admitted = await deps.loginThrottle.begin(`${bank}/${username}`, peer);
      if (!admitted.ok) {
        const whose = admitted.scope === 'account' ? 'this account' : 'this client';
        throw new AppError('LOGIN_THROTTLED',
          `too many failed logins for ${whose}; try again in ${Math.ceil(admitted.retryAfterMs / 1000)} s`,
          { retryDelayMs: admitted.retryAfterMs });
      }
      const { attempt } = admitted;
      try {
        await callBank(bank, () => client.authenticate({ username, password }, { signal: context.signal }));
      } catch (err) {
        // An unknown user and a wrong password look the same from outside: no account probing.
        if (err instanceof AppError && (err.reason === 'ACCOUNT_NOT_FOUND' || err.reason === 'INVALID_CREDENTIALS')) {
          const counts = await attempt.failed();
          // The audit line of a failed login (the password is never logged).
          deps.logger.info('login failed', { bank, username, peer, ...counts });
          throw new AppError('INVALID_CREDENTIALS', 'wrong username or password');
        }
        attempt.ended();
        throw err;
      }
      await attempt.succeeded();
      const account = { bank, username };
      const balance = await callBank(bank, () => client.getBalance({ username }, { signal: context.signal }));
      const issued = await deps.tokens.issue(account);
      return {
        accessToken: issued.token,
        expireTime: new Date(issued.expiresAtMs),
        account: toAccount(account, balance),
      };
    },

    async logout(_request, context: AuthContext) {
      await deps.revocations.revoke(context.auth.tokenId, context.auth.expiresAtMs);
      return {};
    },

    async getBalance(_request, context: AuthContext) {
      const me = accountOf(context.auth);
      const client = ownBank(me);
      const balance = await callBank(me.bank, () => client.getBalance({ username: me.username }, { signal: context.signal }));
      return { account: toAccount(me, balance) };
    },

    async listTransactions(request, context: AuthContext) {
      const me = accountOf(context.auth);
      const pageSize = pageSizeOf(request.pageSize, deps.limits);
      if (!pageSize.ok) throw AppError.from(pageSize);
      const client = ownBank(me);
      const page = await callBank(me.bank, () =>
        client.listTransactions(
          { username: me.username, pageSize: pageSize.value, pageToken: request.pageToken },
          { signal: context.signal },
        ),
      );
      return { entries: page.entries.map(toHistoryEntry), nextPageToken: page.nextPageToken };
    },

    async getTransfer(request, context: AuthContext) {
      const key = validateIdempotencyKey(request.idempotencyKey);
      if (!key.ok) throw AppError.from(key);
      const view = await deps.transfers.get(accountOf(context.auth), key.value);
      if (!view) throw new AppError('TRANSFER_NOT_FOUND', `you have no transfer with idempotency key ${key.value}`);
      return { transfer: toTransfer(view) };
    },

    async createTransfer(request, context: AuthContext) {
      // The payer is the authenticated caller: a user can debit only their own account.
      const payer = accountOf(context.auth);
      const input = validateCreateTransfer(request, payer, { maxTransferAmountMinor, isKnownBank });
      if (!input.ok) throw AppError.from(input);
      const view = await deps.transfers.create(payer, input.value);
      return { transfer: toTransfer(view) };
    },
  };
}

/**
 * Who is logging in, for the per-caller throttle: the certificate's name and the IP address (no
 * port: a new connection must not be a new caller). Both, because one client certificate may be
 * shared by many users (the demo's is), and one address by many machines.
 */
function callerOf(context: CallContext): string {
  const cn = clip(peerOf(context.metadata).cn ?? '-');
  return `${cn}@${context.peer.replace(/:\d+$/, '')}`;
}

/** Just the account of an identity (no token id travels further). */
function accountOf(identity: Identity): AccountRef {
  return { bank: identity.bank, username: identity.username };
}

import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ServerError, Status, type CallContext } from 'nice-grpc';
import { AppError } from '../../src/core/errors.js';
import {
  EntryDirection,
  GatewayServiceDefinition,
  TransferStatus,
  type CreateTransferRequest,
  type GatewayServiceImplementation,
  type HistoryEntry,
  type Transfer,
} from '../../src/gen/payments/v1/gateway.js';
import { createNodeServer, listenTls } from '../../src/grpc/server.js';
import { silentLogger } from '../../src/logging/logger.js';
import { loadTls } from '../../src/tls/credentials.js';
import { ROOT } from '../helpers/processes.js';
import { DEFAULT_CONFIG } from '../helpers/clock.js';

// A small in-memory GatewayService on a real nice-grpc server with mutual TLS, for client tests.
// It records what arrives (method, idempotency key, authorization) and can be told to fail.

interface User {
  readonly bank: string;
  readonly username: string;
  readonly password: string;
  readonly currency: string;
  balanceMinor: bigint;
  readonly history: HistoryEntry[];
}

interface TokenInfo {
  readonly user: User;
  readonly expiresAtMs: number;
  revoked: boolean;
}

export interface RecordedCall {
  readonly method: string;
  readonly authorization: string | undefined;
  readonly idempotencyKey?: string;
  readonly request: unknown;
}

/** Certificates for the fake and the clients; made once per test file. */
export function makeCerts(dir: string): string {
  const certs = path.join(dir, 'certs');
  execFileSync(path.join(ROOT, 'scripts/gen-certs.sh'), [certs], { stdio: 'ignore' });
  return certs;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export class FakeGateway {
  readonly calls: RecordedCall[] = [];
  /** The next N CreateTransfer calls fail with UNAVAILABLE (no ErrorInfo), as a gateway restart would. */
  failCreateTransfers = 0;
  /** The next N Login calls fail with UNAVAILABLE. */
  failLogins = 0;
  /** Every call waits this long before answering (for deadline tests). */
  delayMs = 0;
  /** Lifetime of issued tokens. */
  tokenTtlMs = 3_600_000;
  private readonly users = new Map<string, User>();
  private readonly tokens = new Map<string, TokenInfo>();
  private readonly transfers = new Map<string, { request: CreateTransferRequest; transfer: Transfer }>();
  private readonly server = createNodeServer(silentLogger(), DEFAULT_CONFIG.logging);
  port = 0;

  private constructor(private readonly certsDir: string) {}

  static async start(certsDir: string): Promise<FakeGateway> {
    const fake = new FakeGateway(certsDir);
    fake.server.add(GatewayServiceDefinition, fake.implementation());
    fake.port = await listenTls(fake.server, '127.0.0.1', 0, loadTls(fake.certsDir, 'gateway'));
    return fake;
  }

  get address(): string {
    return `localhost:${this.port}`;
  }

  addUser(bank: string, username: string, password: string, currency: string, balanceMinor: bigint): void {
    this.users.set(`${bank}/${username}`, { bank, username, password, currency, balanceMinor, history: [] });
  }

  balanceOf(bank: string, username: string): bigint {
    return this.users.get(`${bank}/${username}`)!.balanceMinor;
  }

  /** Whether the gateway holds this token and has not revoked it. */
  tokenActive(token: string): boolean {
    const t = this.tokens.get(token);
    return !!t && !t.revoked;
  }

  issuedTokens(): string[] {
    return [...this.tokens.keys()];
  }

  revokeAll(): void {
    for (const t of this.tokens.values()) t.revoked = true;
  }

  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  close(): void {
    this.server.forceShutdown();
  }

  private async enter(method: string, request: unknown, context: CallContext): Promise<void> {
    const key = (request as { idempotencyKey?: string }).idempotencyKey;
    this.calls.push({ method, authorization: context.metadata.get('authorization'), request, ...(key ? { idempotencyKey: key } : {}) });
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
  }

  private authenticate(context: CallContext): User {
    const header = context.metadata.get('authorization');
    if (!header?.startsWith('Bearer ')) throw new AppError('TOKEN_MISSING', 'no bearer token');
    const info = this.tokens.get(header.slice('Bearer '.length));
    if (!info) throw new AppError('TOKEN_INVALID', 'token not recognised');
    if (info.revoked) throw new AppError('TOKEN_REVOKED', 'token was revoked');
    if (Date.now() >= info.expiresAtMs) throw new AppError('TOKEN_EXPIRED', 'token expired');
    return info.user;
  }

  private implementation(): GatewayServiceImplementation {
    return {
      login: async (req, context) => {
        await this.enter('Login', { bank: req.bank, username: req.username }, context);
        if (this.failLogins > 0) {
          this.failLogins--;
          throw new ServerError(Status.UNAVAILABLE, 'not now');
        }
        const user = this.users.get(`${req.bank}/${req.username}`);
        if (!user || user.password !== req.password) throw new AppError('INVALID_CREDENTIALS', 'wrong user name or password');
        const token = `tok-${randomUUID()}`;
        const expiresAtMs = Date.now() + this.tokenTtlMs;
        this.tokens.set(token, { user, expiresAtMs, revoked: false });
        return {
          accessToken: token,
          expireTime: new Date(expiresAtMs),
          account: { bank: user.bank, username: user.username, currency: user.currency, balanceMinor: user.balanceMinor, availableMinor: user.balanceMinor },
        };
      },
      logout: async (req, context) => {
        await this.enter('Logout', req, context);
        this.authenticate(context);
        this.tokens.get(context.metadata.get('authorization')!.slice('Bearer '.length))!.revoked = true;
        return {};
      },
      getBalance: async (req, context) => {
        await this.enter('GetBalance', req, context);
        const u = this.authenticate(context);
        return { account: { bank: u.bank, username: u.username, currency: u.currency, balanceMinor: u.balanceMinor, availableMinor: u.balanceMinor } };
      },
      createTransfer: async (req, context) => {
        await this.enter('CreateTransfer', req, context);
        if (this.failCreateTransfers > 0) {
          this.failCreateTransfers--;
          throw new ServerError(Status.UNAVAILABLE, 'gateway restarting');
        }
        const from = this.authenticate(context);
        const scoped = `${from.bank}/${from.username}/${req.idempotencyKey}`;
        const seen = this.transfers.get(scoped);
        if (seen) {
          if (seen.request.amountMinor !== req.amountMinor || seen.request.toBank !== req.toBank || seen.request.toUsername !== req.toUsername) {
            throw new AppError('IDEMPOTENCY_KEY_REUSED', 'key used for another transfer');
          }
          return { transfer: seen.transfer };
        }
        const to = this.users.get(`${req.toBank}/${req.toUsername}`);
        if (!to) throw new AppError('ACCOUNT_NOT_FOUND', `no account ${req.toBank}/${req.toUsername}`);
        if (req.currency !== from.currency || req.currency !== to.currency) throw new AppError('CURRENCY_MISMATCH', 'currencies differ');
        if (from.balanceMinor < req.amountMinor) throw new AppError('INSUFFICIENT_FUNDS', 'insufficient funds');
        const transactionId = randomUUID();
        const now = new Date();
        from.balanceMinor -= req.amountMinor;
        to.balanceMinor += req.amountMinor;
        from.history.unshift({ transactionId, direction: EntryDirection.ENTRY_DIRECTION_DEBIT, amountMinor: req.amountMinor, currency: req.currency,
          counterpartyBank: to.bank, counterpartyUsername: to.username, balanceAfterMinor: from.balanceMinor, createTime: now });
        to.history.unshift({ transactionId, direction: EntryDirection.ENTRY_DIRECTION_CREDIT, amountMinor: req.amountMinor, currency: req.currency,
          counterpartyBank: from.bank, counterpartyUsername: from.username, balanceAfterMinor: to.balanceMinor, createTime: now });
        const transfer: Transfer = {
          transactionId, idempotencyKey: req.idempotencyKey, fromBank: from.bank, fromUsername: from.username,
          toBank: to.bank, toUsername: to.username, amountMinor: req.amountMinor, currency: req.currency,
          status: TransferStatus.TRANSFER_STATUS_COMMITTED, failureReason: '', failureMessage: '', createTime: now,
        };
        this.transfers.set(scoped, { request: req, transfer });
        return { transfer };
      },
      getTransfer: async (req, context) => {
        await this.enter('GetTransfer', req, context);
        const u = this.authenticate(context);
        const seen = this.transfers.get(`${u.bank}/${u.username}/${req.idempotencyKey}`);
        if (!seen) throw new AppError('TRANSFER_NOT_FOUND', `no transfer with key ${req.idempotencyKey}`);
        return { transfer: seen.transfer };
      },
      listTransactions: async (req, context) => {
        await this.enter('ListTransactions', req, context);
        const u = this.authenticate(context);
        const size = req.pageSize > 0 ? Math.min(req.pageSize, 100) : 20;
        const offset = req.pageToken ? Number(req.pageToken) : 0;
        if (!Number.isInteger(offset) || offset < 0) throw new AppError('INVALID_PAGE_TOKEN', 'bad page token');
        const entries = u.history.slice(offset, offset + size);
        const next = offset + size < u.history.length ? String(offset + size) : '';
        return { entries, nextPageToken: next };
      },
    };
  }
}

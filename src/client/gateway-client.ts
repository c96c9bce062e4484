import { connectivityState } from '@grpc/grpc-js';
import { Metadata, type CallOptions } from 'nice-grpc';
import type { Config } from '../config/schema.js';
import { resolveGatewayAddress } from '../discovery/create.js';
import { backoffMs, sleep, systemClock } from '../core/clock.js';
import { isUuid } from '../core/ids.js';
import { systemRandom, type Random } from '../core/random.js';
import {
  EntryDirection,
  GatewayServiceDefinition,
  TransferStatus,
  type Account,
  type HistoryEntry,
  type Transfer,
} from '../gen/payments/v1/gateway.js';
import { createNodeClient, type ClientCallLimits, type NodeClient } from '../grpc/client.js';
import { silentLogger, type Logger } from '../logging/logger.js';
import { loadTls, type TlsMaterial } from '../tls/credentials.js';
import { ClientFailure, invalidResponse, toClientFailure } from './failure.js';
import type {
  AccountBalance,
  HistoryEntryInfo,
  HistoryPage,
  HistoryRequest,
  LoginResult,
  TransferInfo,
  TransferRequest,
} from './types.js';

// The gateway SDK. Every call has a deadline (limits.callTimeoutMs per attempt); calls the proto marks
// IDEMPOTENT / NO_SIDE_EFFECTS are retried on UNAVAILABLE only (the shared client stack reads the
// proto option), so Login is never repeated and CreateTransfer is, always with the same key.
// Failures surface as ClientFailure.
//
// Several gateways (one shared log): `address` may list them, comma-separated (Consul gives every
// passing instance). A call that meets UNAVAILABLE at one goes to the next at once (CreateTransfer
// with the same key: idempotency is global across instances); after a full round of refusals it
// waits a back-off and goes round again, limits.retryMaxAttempts rounds in all. The client stays
// with the instance that last answered.

/** The gateway addresses in a `client.gatewayAddress` value: one host:port, or several comma-separated. */
export function gatewayAddresses(value: string): string[] {
  const list = value.split(',').map((a) => a.trim()).filter((a) => a.length > 0);
  if (list.length === 0) throw new ClientFailure('INVALID_ARGUMENT', 'INVALID_ARGUMENT', `no gateway address in "${value}"`);
  return [...new Set(list)];
}

export interface GatewayClientOptions {
  /** One gateway host:port, or several comma-separated. */
  readonly address: string;
  readonly tls: TlsMaterial;
  readonly limits: ClientCallLimits;
  readonly logger?: Logger;
  /** Access token from an earlier login (e.g. a stored session). */
  readonly token?: string;
}

export class GatewayClient {
  private readonly addresses: readonly string[];
  private readonly nodes: NodeClient<typeof GatewayServiceDefinition>[];
  /** The instance calls go to first: the one that last answered. */
  private current = 0;
  private token: string | undefined;
  private readonly limits: ClientCallLimits;
  private readonly random: Random;

  constructor(options: GatewayClientOptions) {
    this.addresses = gatewayAddresses(options.address);
    this.token = options.token;
    this.limits = options.limits;
    this.random = systemRandom();
    // With several instances the rounds below retry; each channel then tries once per round.
    const perNode = this.addresses.length > 1 ? { ...options.limits, retryMaxAttempts: 1 } : options.limits;
    this.nodes = this.addresses.map((address) => createNodeClient(GatewayServiceDefinition, address, options.tls,
      options.logger ?? silentLogger(), perNode));
  }

  /** The gateway instance calls go to now. */
  get address(): string {
    return this.addresses[this.current]!;
  }

  private get node(): NodeClient<typeof GatewayServiceDefinition> {
    return this.nodes[this.current]!;
  }

  /** Builds a client from config: client.gatewayAddress (or `address`), certs tls.dir identity "client". */
  static fromConfig(config: Config, options: { address?: string; logger?: Logger; token?: string } = {}): GatewayClient {
    return new GatewayClient({
      address: options.address ?? config.client.gatewayAddress,
      tls: loadTls(config.tls.dir, 'client'),
      limits: { ...config.client, ...config.grpc },
      logger: options.logger,
      token: options.token,
    });
  }

  /** Like fromConfig, but without an address asks discovery first (Consul when discovery.mode is consul). */
  static async discover(config: Config, options: { address?: string; logger?: Logger; token?: string } = {}): Promise<GatewayClient> {
    return GatewayClient.fromConfig(config, { ...options, address: options.address ?? await resolveGatewayAddress(config) });
  }

  setToken(token: string | undefined): void {
    this.token = token;
  }

  /** Logs in; the client keeps the token for later calls. */
  async login(bank: string, username: string, password: string): Promise<LoginResult> {
    const res = await this.call(() => this.node.client.login({ bank, username, password }));
    if (!res.accessToken) throw invalidResponse('login returned no token');
    if (!res.expireTime) throw invalidResponse('login returned no expiry');
    const account = accountOf(res.account);
    this.token = res.accessToken;
    return {
      token: res.accessToken,
      account: { bank: account.bank, username: account.username, currency: account.currency },
      expiresAtMs: res.expireTime.getTime(),
    };
  }

  /** Revokes the token at the gateway and forgets it. */
  async logout(): Promise<void> {
    await this.call(() => this.node.client.logout({}, this.auth()));
    this.token = undefined;
  }

  async balance(): Promise<AccountBalance> {
    const res = await this.call(() => this.node.client.getBalance({}, this.auth()));
    return accountOf(res.account);
  }

  /** Creates a transfer (or returns the first outcome for a key already used). */
  async transfer(request: TransferRequest): Promise<TransferInfo> {
    if (!isUuid(request.idempotencyKey)) {
      throw new ClientFailure('INVALID_ARGUMENT', 'INVALID_IDEMPOTENCY_KEY', `idempotency key "${request.idempotencyKey}" is not a UUID`);
    }
    if (request.amountMinor <= 0n) {
      throw new ClientFailure('INVALID_ARGUMENT', 'INVALID_AMOUNT', 'amount must be greater than 0');
    }
    const res = await this.call(() => this.node.client.createTransfer({
      idempotencyKey: request.idempotencyKey,
      toBank: request.toBank,
      toUsername: request.toUsername,
      amountMinor: request.amountMinor,
      currency: request.currency,
    }, this.auth()));
    return transferOf(res.transfer);
  }

  async getTransfer(idempotencyKey: string): Promise<TransferInfo> {
    const res = await this.call(() => this.node.client.getTransfer({ idempotencyKey }, this.auth()));
    return transferOf(res.transfer);
  }

  async history(request: HistoryRequest = {}): Promise<HistoryPage> {
    const res = await this.call(() => this.node.client.listTransactions({
      pageSize: request.pageSize ?? 0,
      pageToken: request.pageToken ?? '',
    }, this.auth()));
    return { entries: res.entries.map(entryOf), nextPageToken: res.nextPageToken };
  }

  /**
   * Waits up to timeoutMs for a connection to the gateway. False when it cannot be reached (refused,
   * TLS failure, still backing off after a failure, or no connection in time): a call made now would
   * not leave this process, so the outbox counts nothing as sent.
   */
  async waitConnected(timeoutMs: number): Promise<boolean> {
    // Several instances: the first one that is connected (or connects) becomes the current one.
    for (let i = 0; i < this.nodes.length; i++) {
      const index = (this.current + i) % this.nodes.length;
      if (await this.channelConnected(this.nodes[index]!, timeoutMs / this.nodes.length)) {
        this.current = index;
        return true;
      }
    }
    return false;
  }

  private async channelConnected(node: NodeClient<typeof GatewayServiceDefinition>, timeoutMs: number): Promise<boolean> {
    const channel = node.channel;
    const deadline = Date.now() + timeoutMs;
    // Bounded by the deadline: every wait below ends at it at the latest.
    for (;;) {
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY) return true;
      if (state === connectivityState.TRANSIENT_FAILURE || state === connectivityState.SHUTDOWN) return false;
      if (Date.now() >= deadline) return false;
      const changed = await new Promise<boolean>((resolve) => {
        channel.watchConnectivityState(state, deadline, (err) => resolve(!err));
      });
      if (!changed) return false;
    }
  }

  close(): void {
    for (const node of this.nodes) node.close();
  }

  private auth(): CallOptions {
    if (!this.token) throw new ClientFailure('UNAUTHENTICATED', 'NOT_LOGGED_IN', 'not logged in');
    return { metadata: new Metadata({ authorization: `Bearer ${this.token}` }) };
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.nodes.length === 1) {
      try {
        return await fn();
      } catch (err) {
        throw toClientFailure(err, this.address);
      }
    }
    const { retryMaxAttempts, retryBaseDelayMs, retryMaxDelayMs } = this.limits;
    for (let round = 1; ; round++) {
      for (let i = 0; i < this.nodes.length; i++) {
        try {
          return await fn();
        } catch (err) {
          const failure = toClientFailure(err, this.address);
          if (failure.code !== 'UNAVAILABLE') throw failure;
          if (i === this.nodes.length - 1 && round >= retryMaxAttempts) throw failure;
          this.current = (this.current + 1) % this.nodes.length;
        }
      }
      await sleep(systemClock, backoffMs(round, retryBaseDelayMs, retryMaxDelayMs, this.random));
    }
  }
}

function accountOf(a: Account | undefined): AccountBalance {
  if (!a) throw invalidResponse('no account in the answer');
  return { bank: a.bank, username: a.username, currency: a.currency, balanceMinor: a.balanceMinor, availableMinor: a.availableMinor };
}

const STATUS_NAMES: Partial<Record<TransferStatus, TransferInfo['status']>> = {
  [TransferStatus.TRANSFER_STATUS_PENDING]: 'pending',
  [TransferStatus.TRANSFER_STATUS_COMMITTED]: 'committed',
  [TransferStatus.TRANSFER_STATUS_ABORTED]: 'aborted',
};

function transferOf(t: Transfer | undefined): TransferInfo {
  if (!t) throw invalidResponse('no transfer in the answer');
  const status = STATUS_NAMES[t.status];
  if (!status) throw invalidResponse(`transfer status ${String(t.status)}`);
  return {
    transactionId: t.transactionId,
    idempotencyKey: t.idempotencyKey,
    from: { bank: t.fromBank, username: t.fromUsername },
    to: { bank: t.toBank, username: t.toUsername },
    amountMinor: t.amountMinor,
    currency: t.currency,
    status,
    ...(status === 'aborted' ? { failure: { reason: t.failureReason, message: t.failureMessage } } : {}),
    ...(t.createTime ? { createdAt: t.createTime } : {}),
  };
}

function entryOf(e: HistoryEntry): HistoryEntryInfo {
  let direction: HistoryEntryInfo['direction'];
  if (e.direction === EntryDirection.ENTRY_DIRECTION_DEBIT) direction = 'debit';
  else if (e.direction === EntryDirection.ENTRY_DIRECTION_CREDIT) direction = 'credit';
  else throw invalidResponse(`history entry direction ${String(e.direction)}`);
  return {
    transactionId: e.transactionId,
    direction,
    amountMinor: e.amountMinor,
    currency: e.currency,
    counterparty: { bank: e.counterpartyBank, username: e.counterpartyUsername },
    balanceAfterMinor: e.balanceAfterMinor,
    ...(e.createTime ? { createdAt: e.createTime } : {}),
  };
}

import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Metadata } from 'nice-grpc';
import { GatewayServiceDefinition } from '../gen/payments/v1/gateway.js';
import { createNodeClient, type ChannelLimits, type NodeClient } from '../grpc/client.js';
import { reasonOf, statusName } from '../grpc/errors.js';
import { silentLogger } from '../logging/logger.js';
import { loadTls } from '../tls/credentials.js';
import {
  parseAmountDist,
  pickRecipient,
  rng,
  sampleAmount,
  sessionParty,
  type AmountDist,
} from './options.js';
import { addCount, classify, type Counts, type WindowResult } from './stats.js';

// The load of one worker process: its share of the C sessions, each a logged-in user of the real
// payments.v1 GatewayService (mutual TLS, createNodeClient), with exactly one CreateTransfer in
// flight at a time (closed loop). Sessions share `channels` gRPC connections round-robin.

/** Everything a worker needs; sent by the coordinating process. */
export interface WorkerPlan {
  readonly gatewayAddress: string;
  readonly certsDir: string;
  /** Client certificate name in certsDir. */
  readonly identity: string;
  readonly banks: readonly string[];
  readonly accounts: number;
  readonly prefix: string;
  readonly password: string;
  readonly currency: string;
  /** Global session numbers this worker runs. */
  readonly sessions: readonly number[];
  readonly channels: number;
  readonly callTimeoutMs: number;
  /** The system's grpc.* (the load generator is one more client of it). */
  readonly channel: ChannelLimits;
  readonly sameBankShare: number;
  /** formatAmountDist() text. */
  readonly amount: string;
  readonly seed: number;
}

/** When to count: completions in [measureFromMs, endAtMs) are measured; no call starts at or after endAtMs. */
export interface Window {
  readonly measureFromMs: number;
  readonly endAtMs: number;
}

/** Cumulative counters since the load started (warm-up included), for the progress line. */
export interface LiveCounts {
  committed: number;
  aborted: number;
  failed: number;
  inFlight: number;
}

/** Logins at once: each costs an argon2id verification at the bank (~0.1 s of a core). */
export const LOGIN_PARALLELISM = 4;
/**
 * Several gateway instances: a CreateTransfer refused UNAVAILABLE (its instance died) is sent
 * again, same key, to the next instance, at most this many times (as the SDK fails over).
 */
export const FAILOVER_ATTEMPTS_MAX = 50;
/** Pause after a whole round of instances refused. */
export const FAILOVER_ROUND_PAUSE_MS = 100;

interface Session {
  readonly number: number;
  /** Index into the worker's clients: the instance this session calls now. */
  client: number;
  metadata: Metadata;
}

export class Load {
  readonly live: LiveCounts = { committed: 0, aborted: 0, failed: 0, inFlight: 0 };
  private readonly clients: NodeClient<typeof GatewayServiceDefinition>[] = [];
  private readonly sessions: Session[] = [];
  private readonly amount: AmountDist;
  /** Gateway instances the channels go to. */
  private readonly addresses: number;

  constructor(private readonly plan: WorkerPlan) {
    const amount = parseAmountDist(plan.amount);
    if (!amount.ok) throw new Error(amount.message);
    this.amount = amount.value;
    const tls = loadTls(plan.certsDir, plan.identity);
    // Several gateway instances (comma-separated): channel i goes to instance i mod n, and the
    // sessions, spread over the channels, over the instances.
    const addresses = plan.gatewayAddress.split(',');
    this.addresses = addresses.length;
    for (let i = 0; i < plan.channels; i++) {
      // A new credentials object per channel: grpc-js then opens a separate connection for each.
      this.clients.push(createNodeClient(GatewayServiceDefinition, addresses[i % addresses.length]!, tls, silentLogger(), {
        callTimeoutMs: plan.callTimeoutMs,
        // No retries: the benchmark reports every failure instead of hiding it.
        retryMaxAttempts: 1,
        retryBaseDelayMs: 50,
        retryMaxDelayMs: 500,
        ...plan.channel,
      }));
    }
  }

  /** Logs every session in (LOGIN_PARALLELISM at a time). */
  async login(): Promise<void> {
    const queue = [...this.plan.sessions];
    const next = async (): Promise<void> => {
      for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
        const party = sessionParty(s, this.plan.banks.length);
        const index = this.sessions.length % this.clients.length;
        const res = await this.clients[index]!.client.login({
          bank: this.plan.banks[party.bank]!,
          username: `${this.plan.prefix}${party.user}`,
          password: this.plan.password,
        });
        this.sessions.push({ number: s, client: index, metadata: new Metadata({ authorization: `Bearer ${res.accessToken}` }) });
      }
    };
    await Promise.all(Array.from({ length: LOGIN_PARALLELISM }, next));
  }

  /** Runs every session until the window ends; resolves with what was measured inside it. */
  async run(window: Window): Promise<WindowResult> {
    const result = { committed: 0, aborted: {} as Counts, failed: {} as Counts, latenciesMs: [] as number[] };
    await Promise.all(this.sessions.map((s) => this.drive(s, window, result)));
    return result;
  }

  private async drive(session: Session, window: Window, out: { committed: number; aborted: Counts; failed: Counts; latenciesMs: number[] }): Promise<void> {
    const { banks, accounts, prefix, currency, sameBankShare } = this.plan;
    const payer = sessionParty(session.number, banks.length);
    const random = rng((this.plan.seed * 1_000_003 + session.number) >>> 0);
    while (Date.now() < window.endAtMs) {
      const to = pickRecipient(payer, banks.length, accounts, sameBankShare, random);
      const request = {
        idempotencyKey: randomUUID(),
        toBank: banks[to.bank]!,
        toUsername: `${prefix}${to.user}`,
        amountMinor: sampleAmount(this.amount, random),
        currency,
      };
      const started = performance.now();
      let reason: string | undefined;
      this.live.inFlight++;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.clients[session.client]!.client.createTransfer(request, { metadata: session.metadata });
          reason = undefined;
        } catch (err) {
          reason = reasonOf(err) ?? statusName(err);
          // Another instance takes the same key (idempotency is global across instances).
          if (this.addresses > 1 && statusName(err) === 'UNAVAILABLE' && attempt < FAILOVER_ATTEMPTS_MAX) {
            session.client = (session.client + 1) % this.clients.length;
            if (attempt % this.addresses === 0) await new Promise((r) => setTimeout(r, FAILOVER_ROUND_PAUSE_MS));
            continue;
          }
        }
        break;
      }
      this.live.inFlight--;
      const latencyMs = performance.now() - started;
      const kind = classify(reason);
      this.live[kind]++;
      const now = Date.now();
      if (now < window.measureFromMs || now >= window.endAtMs) continue;
      if (kind === 'committed') {
        out.committed++;
        out.latenciesMs.push(latencyMs);
      } else {
        addCount(kind === 'aborted' ? out.aborted : out.failed, reason!);
      }
    }
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

import { isAbortError } from 'abort-controller-x';
import { backoffMs, sleep, type Clock } from '../core/clock.js';
import { errorText } from '../core/errors.js';
import type { Random } from '../core/random.js';
import type { Discovery } from '../discovery/discovery.js';
import { CoordinatorServiceDefinition, Decision } from '../gen/coordinator/v1/coordinator.js';
import { createNodeClient, type ChannelLimits, type NodeClient } from '../grpc/client.js';
import { statusName } from '../grpc/errors.js';
import type { Logger } from '../logging/logger.js';
import type { TlsMaterial } from '../tls/credentials.js';
import { isStorageError, type Ledger } from './ledger.js';

// The participant's termination protocol. A bank that voted YES is uncertain until the coordinator
// tells it the outcome; normally phase 2 does, but the gateway may be down or have lost the call.
// Every inDoubtCheckIntervalMs the bank takes the legs prepared longer than inDoubtQueryAfterMs
// (oldest first, at most inDoubtQueryBatchMax), asks the gateway's CoordinatorService for each
// one's decision and applies it: commit, or abort (also for a transaction the gateway has no record
// of: presumed abort). It never releases a yes-voted hold on its own: without an answer the leg
// stays prepared, and while the gateway cannot be reached the pause between rounds doubles (with
// jitter) up to inDoubtRetryMaxIntervalMs.

export type CoordinatorDecision = 'commit' | 'abort' | 'pending';

/** Who answers; throws when there is no answer (unreachable, refused, timed out). */
export interface DecisionSource {
  getDecision(txId: string, signal: AbortSignal): Promise<CoordinatorDecision>;
  close(): void;
}

export interface InDoubtLimits {
  readonly inDoubtQueryAfterMs: number;
  readonly inDoubtCheckIntervalMs: number;
  readonly inDoubtQueryBatchMax: number;
  readonly inDoubtQueryTimeoutMs: number;
  readonly inDoubtRetryMaxIntervalMs: number;
}

export interface RoundResult {
  readonly asked: number;
  readonly committed: number;
  readonly aborted: number;
  readonly pending: number;
  /** The round stopped without applying an answer (none came, or the ledger could not write it). */
  readonly unanswered: boolean;
}

/** A warning on the first unanswered round, then on every this many. */
const WARN_EVERY_ROUNDS = 10;

export class InDoubtResolver {
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private failedRounds = 0;

  constructor(
    private readonly ledger: Ledger,
    private readonly source: DecisionSource,
    private readonly limits: InDoubtLimits,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {}

  /** Starts the periodic rounds (the first one after one check interval). */
  start(): void {
    this.loop ??= this.run().catch((err: unknown) => {
      if (isAbortError(err)) return;
      // A ledger assertion (the coordinator contradicting what this bank did) is a bug: crash.
      throw err;
    });
  }

  /** Stops the rounds, cancelling a query in flight. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    this.source.close();
  }

  private async run(): Promise<void> {
    const { inDoubtCheckIntervalMs, inDoubtRetryMaxIntervalMs } = this.limits;
    let unansweredRounds = 0;
    for (;;) {
      const pauseMs = unansweredRounds === 0
        ? inDoubtCheckIntervalMs
        : backoffMs(unansweredRounds + 1, inDoubtCheckIntervalMs, inDoubtRetryMaxIntervalMs, this.random);
      await sleep(this.clock, pauseMs, this.abort.signal);
      const r = await this.round();
      unansweredRounds = r.unanswered ? unansweredRounds + 1 : 0;
    }
  }

  /** One round: ask about the oldest in-doubt legs and apply the answers. */
  async round(): Promise<RoundResult> {
    const ids = this.ledger.preparedBefore(this.clock.nowMs() - this.limits.inDoubtQueryAfterMs, this.limits.inDoubtQueryBatchMax);
    const counts = { asked: 0, committed: 0, aborted: 0, pending: 0 };
    for (const txId of ids) {
      let decision: CoordinatorDecision;
      try {
        counts.asked++;
        decision = await this.source.getDecision(txId, this.abort.signal);
      } catch (err) {
        if (isAbortError(err)) throw err;
        return this.unanswered(counts, 'the coordinator gave no answer', { transactionId: txId, inDoubt: ids.length, code: statusName(err), error: errorText(err) });
      }
      // The gateway's phase 2 may have resolved it meanwhile; commit and abort are idempotent.
      try {
        if (decision === 'commit') {
          this.ledger.commit(txId);
          counts.committed++;
        } else if (decision === 'abort') {
          this.ledger.abort(txId);
          counts.aborted++;
        } else {
          counts.pending++;
        }
      } catch (err) {
        // Anything but storage is a bug (a ledger assertion: the coordinator contradicting what
        // this bank did): crash.
        if (!isStorageError(err)) throw err;
        // The ledger could not write it (a full disk, an I/O error): the leg stays prepared, and
        // the next round asks again (after the same back-off as an unanswered one).
        return this.unanswered(counts, 'could not apply the coordinator\'s decision', { transactionId: txId, decision, error: errorText(err) });
      }
      if (decision !== 'pending') this.logger.info('in-doubt transaction resolved by the coordinator', { transactionId: txId, decision });
    }
    this.failedRounds = 0;
    return { ...counts, unanswered: false };
  }

  /** Ends a round without an answer applied: logged (at warn now and then), the legs stay prepared. */
  private unanswered(counts: Omit<RoundResult, 'unanswered'>, why: string, fields: Record<string, unknown>): RoundResult {
    this.failedRounds++;
    const level = this.failedRounds === 1 || this.failedRounds % WARN_EVERY_ROUNDS === 0 ? 'warn' : 'debug';
    this.logger.log(level, `in-doubt: ${why}; the legs stay prepared, will ask again`, { ...fields, failedRounds: this.failedRounds });
    return { ...counts, unanswered: true };
  }
}

/**
 * Asks a gateway's CoordinatorService, found through discovery, with this bank's certificate. With
 * several gateway instances (one shared log, so any of them answers for every transfer) it asks the
 * one that answered last, and the next one when that fails.
 */
export class GatewayDecisionSource implements DecisionSource {
  private readonly byAddress = new Map<string, NodeClient<typeof CoordinatorServiceDefinition>>();
  private lastGood: string | undefined;

  constructor(
    private readonly discovery: Pick<Discovery, 'gateways'>,
    private readonly tls: TlsMaterial,
    private readonly logger: Logger,
    private readonly queryTimeoutMs: number,
    private readonly channel: ChannelLimits,
  ) {}

  async getDecision(txId: string, signal: AbortSignal): Promise<CoordinatorDecision> {
    const endpoints = this.discovery.gateways().map((e) => e.address);
    if (endpoints.length === 0) throw new Error('no gateway is known to discovery');
    this.dropGone(endpoints);
    const start = Math.max(0, endpoints.indexOf(this.lastGood ?? ''));
    let lastError: unknown;
    for (let i = 0; i < endpoints.length; i++) {
      const address = endpoints[(start + i) % endpoints.length]!;
      try {
        const res = await this.clientFor(address).client.getDecision({ transactionId: txId }, { signal });
        this.lastGood = address;
        switch (res.decision) {
          case Decision.DECISION_COMMIT: return 'commit';
          case Decision.DECISION_ABORT: return 'abort';
          case Decision.DECISION_PENDING: return 'pending';
          default: throw new Error(`the gateway at ${address} answered decision ${res.decision} for ${txId}`);
        }
      } catch (err) {
        if (signal.aborted) throw err;
        lastError = err;
      }
    }
    throw lastError;
  }

  private clientFor(address: string): NodeClient<typeof CoordinatorServiceDefinition> {
    let entry = this.byAddress.get(address);
    if (!entry) {
      entry = createNodeClient(CoordinatorServiceDefinition, address, this.tls, this.logger, {
        callTimeoutMs: this.queryTimeoutMs,
        retryMaxAttempts: 1,
        retryBaseDelayMs: 100,
        retryMaxDelayMs: 100,
        ...this.channel,
      });
      this.byAddress.set(address, entry);
    }
    return entry;
  }

  /** Channels to instances discovery no longer lists are closed. */
  private dropGone(endpoints: readonly string[]): void {
    for (const [address, entry] of this.byAddress) {
      if (endpoints.includes(address)) continue;
      entry.close();
      this.byAddress.delete(address);
    }
  }

  close(): void {
    for (const entry of this.byAddress.values()) entry.close();
    this.byAddress.clear();
  }
}

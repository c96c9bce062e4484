import { Counter, Gauge, Histogram } from 'prom-client';
import type { LoginObserver } from '../gateway/login-throttle.js';
import type { TransferObserver } from '../gateway/transfer-driver.js';
import { LATENCY_SECONDS_BUCKETS } from './buckets.js';
import { NodeMetrics } from './node.js';

// The gateway's metrics: the common node metrics plus transfers (decisions by outcome and reason,
// prepare and phase-2 durations, transfers being driven) and logins (refused, throttled).

export class GatewayMetrics extends NodeMetrics implements TransferObserver, LoginObserver {
  private readonly transfers: Counter<'outcome' | 'reason'>;
  private readonly prepareSeconds: Histogram<'outcome'>;
  private readonly phase2Seconds: Histogram<'outcome'>;
  private readonly loginFailures: Counter;
  private readonly loginThrottles: Counter<'scope'>;
  private unfinishedSource: (() => number) | undefined;

  constructor(node = 'gateway') {
    super(node);
    const registers = [this.registry];
    const buckets = [...LATENCY_SECONDS_BUCKETS];
    this.transfers = new Counter({
      name: 'payments_transfers_total',
      help: 'Transfers decided by this gateway, by outcome (committed, aborted) and reason (NONE when committed).',
      labelNames: ['outcome', 'reason'] as const,
      registers,
    });
    this.prepareSeconds = new Histogram({
      name: 'payments_transfer_prepare_duration_seconds',
      help: 'Phase 1 of a transfer: from its begin record being durable (prepares leave) to the decision, by outcome.',
      labelNames: ['outcome'] as const,
      buckets,
      registers,
    });
    this.phase2Seconds = new Histogram({
      name: 'payments_transfer_phase2_duration_seconds',
      help: 'Phase 2 of a transfer: from its decision being durable to the last bank acknowledgement, by outcome.',
      labelNames: ['outcome'] as const,
      buckets,
      registers,
    });
    const unfinished = () => this.unfinishedSource?.() ?? 0;
    new Gauge({
      name: 'payments_transfers_unfinished',
      help: 'Transfers this gateway is driving now (waiting for their answer or still in phase 2).',
      registers,
      collect() {
        this.set(unfinished());
      },
    });
    this.loginFailures = new Counter({
      name: 'payments_login_failures_total',
      help: 'Logins refused for a wrong username or password.',
      registers,
    });
    this.loginThrottles = new Counter({
      name: 'payments_login_throttled_total',
      help: 'Logins refused before the bank was asked (too many failures), by scope (account, peer).',
      labelNames: ['scope'] as const,
      registers,
    });
    // Zero series from the start, so that rate() sees the first event.
    for (const outcome of ['committed', 'aborted']) this.prepareSeconds.zero({ outcome });
    this.transfers.inc({ outcome: 'committed', reason: 'NONE' }, 0);
    for (const scope of ['account', 'peer']) this.loginThrottles.inc({ scope }, 0);
  }

  /** Where the unfinished-transfers gauge reads its value (the transfer engine). */
  watchUnfinished(read: () => number): void {
    this.unfinishedSource = read;
  }

  decided(decision: 'commit' | 'abort', reason: string | undefined, prepareMs: number | undefined): void {
    const outcome = outcomeOf(decision);
    this.transfers.inc({ outcome, reason: reason ?? 'NONE' });
    if (prepareMs !== undefined) this.prepareSeconds.observe({ outcome }, prepareMs / 1000);
  }

  phase2Done(decision: 'commit' | 'abort', phase2Ms: number): void {
    this.phase2Seconds.observe({ outcome: outcomeOf(decision) }, phase2Ms / 1000);
  }

  failed(): void {
    this.loginFailures.inc();
  }

  throttled(scope: 'account' | 'peer'): void {
    this.loginThrottles.inc({ scope });
  }
}

function outcomeOf(decision: 'commit' | 'abort'): 'committed' | 'aborted' {
  return decision === 'commit' ? 'committed' : 'aborted';
}

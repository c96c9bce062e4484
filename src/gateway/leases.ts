import type { Clock } from '../core/clock.js';
import { errorText } from '../core/errors.js';
import { repeat, type Repeating } from '../core/repeat.js';
import type { Logger } from '../logging/logger.js';
import { OutageLog } from '../logging/outage.js';
import type { StoredTransfer, TransferLeases } from './store/transfer-log.js';

// Lease upkeep of a gateway that shares its log with others: renew the leases of the transfers it
// owns, and take over the ones whose owner stopped renewing (crashed, partitioned, paused). Both
// are single statements on the shared log, on the injected clock; the lease times themselves are
// the database's (store/postgres.ts), so instances' clocks never have to agree.

export interface LeaseLimits {
  readonly leaseRenewIntervalMs: number;
  readonly takeoverIntervalMs: number;
  readonly takeoverBatchMax: number;
}

export class LeaseKeeper {
  private renewing: Repeating | undefined;
  private takingOver: Repeating | undefined;
  private stopped = false;
  /** One warning per run of renewal failures, not one per attempt. */
  private readonly renewOutage: OutageLog;

  constructor(
    private readonly leases: TransferLeases,
    private readonly limits: LeaseLimits,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** Transfers just taken over (epoch bumped, owned here now): drive them. */
    private readonly onTakenOver: (rows: StoredTransfer[]) => void,
  ) {
    this.renewOutage = new OutageLog(logger, 'could not renew transfer leases', 'lease renewal works again', { instance: leases.instanceId });
  }

  start(): void {
    if (this.stopped) return;
    this.renewing = repeat(this.clock, {
      intervalMs: this.limits.leaseRenewIntervalMs,
      // Leases lapse if this goes on for leaseMs: other gateways then take the transfers over
      // and this one's writes are refused (fenced), so nothing is decided twice.
      onError: (err) => this.renewOutage.failed(err),
    }, async () => {
      await this.leases.renew();
      this.renewOutage.ok();
    });
    this.takingOver = repeat(this.clock, {
      intervalMs: this.limits.takeoverIntervalMs,
      firstDelayMs: 0,
      onError: (err) => this.logger.warn('could not look for expired transfer leases', { instance: this.leases.instanceId, error: errorText(err) }),
    }, () => this.takeOverOnce());
  }

  stop(): void {
    this.stopped = true;
    this.renewing?.stop();
    this.takingOver?.stop();
  }

  /** One look for expired leases now (also what the timer runs); resolves with how many were taken. */
  async takeOverOnce(): Promise<number> {
    let taken = 0;
    // A backlog (a crashed peer's transfers) is taken batch by batch without waiting a full interval.
    for (;;) {
      if (this.stopped) return taken;
      const rows = await this.leases.takeOverExpired(this.limits.takeoverBatchMax);
      if (rows.length === 0 || this.stopped) return taken;
      taken += rows.length;
      this.logger.warn('took over transfers whose owner stopped renewing its lease', {
        instance: this.leases.instanceId, transfers: rows.length,
      });
      this.onTakenOver(rows);
      if (rows.length < this.limits.takeoverBatchMax) return taken;
    }
  }
}

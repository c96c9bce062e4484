import { Gauge } from 'prom-client';
import { NodeMetrics } from './node.js';

// A bank's metrics: the common node metrics plus its in-doubt legs (prepared, not yet decided).

export class BankMetrics extends NodeMetrics {
  private inDoubtSource: (() => number) | undefined;

  constructor(name: string) {
    super(name);
    const inDoubt = () => this.inDoubtSource?.() ?? 0;
    new Gauge({
      name: 'payments_bank_in_doubt_legs',
      help: 'Legs prepared at this bank and not yet committed or aborted (read from the ledger at each scrape).',
      registers: [this.registry],
      collect() {
        this.set(inDoubt());
      },
    });
  }

  /** Where the in-doubt gauge reads its value (the ledger). */
  watchInDoubt(read: () => number): void {
    this.inDoubtSource = read;
  }
}

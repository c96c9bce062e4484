import { Counter, Gauge } from 'prom-client';
import type { LedgerObserver } from '../bank/group-commit.js';
import { NodeMetrics } from './node.js';

// A bank's metrics: the common node metrics plus its in-doubt legs (prepared, not yet decided) and
// the 2PC operations it performed, by kind (however they arrived: the gateway's batches travel as
// BatchStream messages, so the per-method RPC counters do not tell prepares from commits).

export class BankMetrics extends NodeMetrics {
  private inDoubtSource: (() => number) | undefined;
  /** The ledger's group commits and what they performed. */
  readonly ledger: LedgerObserver;

  constructor(name: string) {
    super(name);
    const operations = new Counter({
      name: 'payments_bank_operations_total',
      help: '2PC operations performed at this bank, by op (prepare: one per leg; commit; abort), repeats included, durable when counted.',
      labelNames: ['op'] as const,
      registers: [this.registry],
    });
    const groupCommit = this.groupCommit;
    this.ledger = {
      writeStarted: (items) => groupCommit.writeStarted(items),
      performed(ops) {
        const counts = { prepare: 0, commit: 0, abort: 0 };
        for (const op of ops) counts[op.type] += 1;
        for (const [op, n] of Object.entries(counts)) if (n > 0) operations.inc({ op }, n);
      },
    };
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

import { Histogram, type Registry } from 'prom-client';
import type { GroupCommitObserver } from '../core/group-commit.js';
import { BATCH_SIZE_BUCKETS, LATENCY_SECONDS_BUCKETS } from './buckets.js';

// Metrics of the node's group commit (src/core/group-commit.ts): the gateway's transfer log, a
// bank's ledger. One observation per shared write.

export function groupCommitMetrics(registry: Registry): GroupCommitObserver {
  const registers = [registry];
  const size = new Histogram({
    name: 'payments_group_commit_batch_size',
    help: 'Items (log records at the gateway, 2PC operations at a bank) written in one group commit.',
    buckets: [...BATCH_SIZE_BUCKETS],
    registers,
  });
  const duration = new Histogram({
    name: 'payments_group_commit_duration_seconds',
    help: 'Time of one group commit (transaction and fsync, or database round trip), by result (ok, failed).',
    labelNames: ['result'] as const,
    buckets: [...LATENCY_SECONDS_BUCKETS],
    registers,
  });
  return {
    writeStarted(items) {
      size.observe(items);
      const end = duration.startTimer();
      return (ok) => end({ result: ok ? 'ok' : 'failed' });
    },
  };
}

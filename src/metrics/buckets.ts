import { exponentialBuckets } from 'prom-client';

// Histogram buckets shared by the node metrics.

/** 0.5 ms .. ~16 s, doubling: an fsync-bound commit up to a timed-out prepare. */
export const LATENCY_SECONDS_BUCKETS: readonly number[] = exponentialBuckets(0.0005, 2, 16);

/** 1 .. 4096 items, doubling (group commits are bounded by persistBatchMaxRecords / groupCommitOpsMax). */
export const BATCH_SIZE_BUCKETS: readonly number[] = exponentialBuckets(1, 2, 13);

import { performance } from 'node:perf_hooks';
import type { AccountRef } from '../core/transfer.js';
import type { LogRecord } from '../coordinator/types.js';
import type { BankBatchClient, BatchClientSource } from '../gateway/bank-batches.js';
import type { OnDurable, TransferLog } from '../gateway/store/transfer-log.js';
import type { Transfers } from '../gateway/transfers.js';
import type { CriticalPathRecorder } from './critical-path.js';

// The gateway's half of critical-path tracing (see critical-path.ts): where each committed
// transfer's time went between CreateTransfer reaching the engine and its answer, on the gateway's
// clock. Built only when tracing is on, by wrapping three things from the outside (the driver and
// the coordinator are untouched):
//   - Transfers.create: the start (the request passed validation) and the answer;
//   - the log's enqueue: when a begin or decision record was queued and when it was durable (the
//     group commit's batching and its write, SQLite fsync or PostgreSQL round trip, together);
//   - the lean bank clients: when a PrepareBatch / CommitBatch carrying the transfer left and
//     when its answer came back (the later of the two banks).
// When the prepares leave beside the begin record, prepare_dispatch is 0 and prepare_rtt is what
// the votes took after the record was durable. The phases of one transfer add up to its total:
//   accept, begin_flush, prepare_dispatch, prepare_rtt, decide, decision_flush, commit_dispatch,
//   commit_rtt, reply  =  total

export const GATEWAY_PHASES = [
  'accept', 'begin_flush', 'prepare_dispatch', 'prepare_rtt', 'decide',
  'decision_flush', 'commit_dispatch', 'commit_rtt', 'reply',
] as const;

interface RecordMarks {
  enqueuedAt?: number;
  durableAt?: number;
}

interface Marks {
  readonly startedAt: number;
  txId?: string;
  readonly begin: RecordMarks;
  readonly decision: RecordMarks;
  prepareSentAt?: number;
  lastVoteAt?: number;
  commitSentAt?: number;
  lastAckAt?: number;
}

const now = () => performance.now();

function scope(owner: AccountRef, idempotencyKey: string): string {
  return `${owner.bank}\u0000${owner.username}\u0000${idempotencyKey}`;
}

export class GatewayTrace {
  /** Transfers between create() and the enqueue of their begin record. */
  private readonly byKey = new Map<string, Marks>();
  /** Transfers whose begin record was queued, until their create() settles (bounded by in-flight). */
  private readonly byTx = new Map<string, Marks>();
  private readonly leanClients = new WeakMap<BankBatchClient, BankBatchClient>();

  constructor(private readonly recorder: CriticalPathRecorder) {}

  /** Wraps the log's enqueue on this instance. */
  traceLog(log: TransferLog): void {
    const enqueue = log.enqueue.bind(log);
    log.enqueue = (record: LogRecord, nowMs: number, onDurable?: OnDurable, urgent?: boolean) => {
      const slot = this.slotOf(record);
      if (!slot) return enqueue(record, nowMs, onDurable, urgent);
      slot.enqueuedAt = now();
      enqueue(record, nowMs, (err) => {
        slot.durableAt = now();
        onDurable?.(err);
      }, urgent);
    };
  }

  private slotOf(record: LogRecord): RecordMarks | undefined {
    if (record.type === 'begin') {
      const m = this.byKey.get(scope(record.tx.from, record.tx.idempotencyKey));
      if (!m) return undefined;
      m.txId = record.tx.id;
      this.byTx.set(record.tx.id, m);
      this.byKey.delete(scope(record.tx.from, record.tx.idempotencyKey));
      return m.begin;
    }
    if (record.type === 'decision') return this.byTx.get(record.txId)?.decision;
    return undefined;
  }

  /** The driver's bank clients, with PrepareBatch / CommitBatch timed. */
  bankClients(source: BatchClientSource): BatchClientSource {
    const lean = source.lean?.bind(source);
    return {
      get: (bank) => source.get(bank),
      ...(lean ? { lean: (bank: string) => {
        const c = lean(bank);
        return c && this.leanClient(c);
      } } : {}),
    };
  }

  private leanClient(inner: BankBatchClient): BankBatchClient {
    const known = this.leanClients.get(inner);
    if (known) return known;
    const w = Object.create(inner) as { -readonly [K in keyof BankBatchClient]: BankBatchClient[K] };
    w.prepareBatch = (request, options) => {
      const marks = (request.legs ?? []).map((l) => (l.transactionId === undefined ? undefined : this.byTx.get(l.transactionId)));
      const sentAt = now();
      for (const m of marks) if (m) m.prepareSentAt ??= sentAt;
      const call = inner.prepareBatch(request, options);
      call.then(() => {
        const at = now();
        for (const m of marks) if (m) m.lastVoteAt = at;
      }, () => undefined);
      return call;
    };
    w.commitBatch = (request, options) => {
      const marks = (request.transactionIds ?? []).map((id) => this.byTx.get(id));
      const sentAt = now();
      for (const m of marks) if (m) m.commitSentAt ??= sentAt;
      const call = inner.commitBatch(request, options);
      call.then(() => {
        const at = now();
        for (const m of marks) if (m) m.lastAckAt = at;
      }, () => undefined);
      return call;
    };
    this.leanClients.set(inner, w);
    return w;
  }

  /** The engine, with each create() timed from start to answer. */
  transfers(inner: Transfers): Transfers {
    return {
      create: (owner, input) => {
        const key = scope(owner, input.idempotencyKey);
        const marks: Marks = { startedAt: now(), begin: {}, decision: {} };
        this.byKey.set(key, marks);
        // The begin record is queued after the engine's (awaited) idempotency lookup, so the key
        // stays mapped until it is queued or the call settles.
        const answer = inner.create(owner, input);
        answer.then(() => this.committed(marks, now()), () => this.recorder.count('not_committed')).finally(() => {
          if (this.byKey.get(key) === marks) this.byKey.delete(key);
          if (marks.txId !== undefined) this.byTx.delete(marks.txId);
        });
        return answer;
      },
      get: (owner, key) => inner.get(owner, key),
      decisionOf: (txId) => inner.decisionOf(txId),
      start: () => inner.start(),
      stop: (graceMs) => inner.stop(graceMs),
    };
  }

  private committed(m: Marks, answeredAt: number): void {
    const { begin, decision } = m;
    const r = this.recorder;
    // A replay (no begin record here) or a run whose marks are incomplete is counted, not timed.
    if (begin.enqueuedAt === undefined || begin.durableAt === undefined || m.prepareSentAt === undefined
      || m.lastVoteAt === undefined || decision.enqueuedAt === undefined || decision.durableAt === undefined) {
      r.count('committed_untimed');
      return;
    }
    r.count('committed');
    r.record('accept', begin.enqueuedAt - m.startedAt);
    r.record('begin_flush', begin.durableAt - begin.enqueuedAt);
    // The prepares may leave beside the begin record (a log of this gateway's own): the round trip
    // then counts from the record being durable, and the part hidden behind its flush is not counted twice.
    const preparedFrom = Math.max(m.prepareSentAt, begin.durableAt);
    const votedAt = Math.max(m.lastVoteAt, preparedFrom);
    r.record('prepare_dispatch', preparedFrom - begin.durableAt);
    r.record('prepare_rtt', votedAt - preparedFrom);
    r.record('decide', decision.enqueuedAt - votedAt);
    r.record('decision_flush', decision.durableAt - decision.enqueuedAt);
    if (m.commitSentAt === undefined || m.commitSentAt > answeredAt) {
      // Answered at the durable decision (replyAckWaitMs 0), the Commits still on their way.
      r.count('replied_at_decision');
      r.record('commit_dispatch', answeredAt - decision.durableAt);
      r.record('commit_rtt', 0);
      r.record('reply', 0);
    } else if (m.lastAckAt !== undefined && m.lastAckAt <= answeredAt) {
      r.record('commit_dispatch', m.commitSentAt - decision.durableAt);
      r.record('commit_rtt', m.lastAckAt - m.commitSentAt);
      r.record('reply', answeredAt - m.lastAckAt);
    } else {
      // Answered before every bank acknowledged (replyAckWaitMs).
      r.count('replied_before_acks');
      r.record('commit_dispatch', m.commitSentAt - decision.durableAt);
      r.record('commit_rtt', answeredAt - m.commitSentAt);
      r.record('reply', 0);
    }
    r.record('total', answeredAt - m.startedAt);
  }
}

import { EventEmitter, on } from 'node:events';
import { ClientError, Status } from 'nice-grpc';
import { ErrorInfo, RichClientError } from 'nice-grpc-error-details';
import type { Clock, Timer } from '../core/clock.js';
import { ERROR_DOMAIN } from '../core/errors.js';
import {
  BankServiceDefinition,
  type AbortBatchRequest,
  type AbortBatchResponse,
  type BatchStreamError,
  type BatchStreamRequest,
  type BatchStreamResponse,
  type CommitBatchRequest,
  type CommitBatchResponse,
  type PrepareBatchRequest,
  type PrepareBatchResponse,
} from '../gen/bank/v1/bank.js';
import type { NodeClient } from '../grpc/client.js';
import type { BankBatchClient, BatchCallOptions } from './bank-batches.js';

// The driver's PrepareBatch / CommitBatch / AbortBatch calls to one bank as messages on one
// long-lived BatchStream instead of a unary call each: a unary call costs both ends ~4x the CPU of
// a message on an open stream (a new HTTP/2 stream with headers and trailers, an abort signal and
// timers per call), which at low concurrency is most of a transfer's CPU. Each call keeps what it
// had as a unary call: its own deadline (DEADLINE_EXCEEDED, enforced here), its own status when
// the bank refuses it, and the stream's error when the stream breaks (a bank restart: UNAVAILABLE).
// The next call opens a new stream. A bank that does not know BatchStream (UNIMPLEMENTED: an older
// version) gets unary calls from then on, the waiting ones included.

type Lean = NodeClient<typeof BankServiceDefinition>['lean'];

const PATH = `/${BankServiceDefinition.fullName}/BatchStream`;

interface Stream {
  readonly requests: EventEmitter;
  readonly abort: AbortController;
}

interface Pending {
  readonly stream: Stream;
  /** The response's field for this kind of call, or undefined if it answered another kind. */
  readonly pick: (response: BatchStreamResponse) => unknown;
  /** The same call as a unary call with this deadline (ms from now), for a bank without BatchStream. */
  readonly unary: (deadline: number) => Promise<unknown>;
  /** Absolute time (ms) of the call's deadline. */
  readonly deadlineAtMs: number;
  readonly timer: Timer;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

export class BankBatchStream implements BankBatchClient {
  private stream: Stream | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** The bank answered UNIMPLEMENTED to BatchStream: unary calls only. */
  private unsupported = false;
  /** Closed or retired: no new calls; the stream ends once no call waits on it. */
  private closed = false;

  constructor(
    private readonly lean: Lean,
    private readonly clock: Clock,
  ) {}

  prepareBatch(request: PrepareBatchRequest, options: BatchCallOptions): Promise<PrepareBatchResponse> {
    return this.call({ prepare: request }, options, (r) => r.prepare, (deadline) => this.lean.prepareBatch(request, { deadline }));
  }

  commitBatch(request: CommitBatchRequest, options: BatchCallOptions): Promise<CommitBatchResponse> {
    return this.call({ commit: request }, options, (r) => r.commit, (deadline) => this.lean.commitBatch(request, { deadline }));
  }

  abortBatch(request: AbortBatchRequest, options: BatchCallOptions): Promise<AbortBatchResponse> {
    return this.call({ abort: request }, options, (r) => r.abort, (deadline) => this.lean.abortBatch(request, { deadline }));
  }

  /** Ends the stream (its waiting calls fail with the cancellation) and fails later calls with UNAVAILABLE. */
  close(): void {
    this.closed = true;
    this.stream?.abort.abort();
  }

  /**
   * The bank moved to another address: later calls fail with UNAVAILABLE at once (their callers
   * retry at the new address), the calls waiting now still get their answers, and the stream ends
   * after the last of them (at once if none waits).
   */
  retire(): void {
    if (this.closed) return;
    this.closed = true;
    this.endIfClosedAndIdle();
  }

  private endIfClosedAndIdle(): void {
    if (this.closed && this.pending.size === 0) this.stream?.abort.abort();
  }

  private call<T>(
    batch: Omit<BatchStreamRequest, 'id'>,
    options: BatchCallOptions,
    pick: (response: BatchStreamResponse) => T | undefined,
    unary: (deadline: number) => Promise<T>,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new ClientError(PATH, Status.UNAVAILABLE, 'the bank client is closed'));
    if (this.unsupported) return unary(options.deadline);
    return new Promise<T>((resolve, reject) => {
      const stream = this.stream ?? this.open();
      const id = this.nextId;
      this.nextId = (this.nextId + 1) >>> 0;
      const timer = this.clock.setTimer(options.deadline, () => {
        this.pending.delete(id);
        reject(new ClientError(PATH, Status.DEADLINE_EXCEEDED, 'Deadline exceeded'));
        this.endIfClosedAndIdle();
      }, { background: true });
      this.pending.set(id, {
        stream,
        pick,
        unary,
        deadlineAtMs: this.clock.nowMs() + options.deadline,
        timer,
        resolve: (value) => resolve(value as T),
        reject,
      });
      stream.requests.emit('request', { id, ...batch });
    });
  }

  private open(): Stream {
    const stream: Stream = { requests: new EventEmitter(), abort: new AbortController() };
    this.stream = stream;
    const { signal } = stream.abort;
    // Listening from now on: a request emitted before the call starts reading waits in here.
    const emitted = on(stream.requests, 'request', { signal });
    async function* requests(): AsyncGenerator<BatchStreamRequest> {
      for await (const [request] of emitted) yield request as BatchStreamRequest;
    }
    const answers = this.lean.batchStream(requests(), { signal });
    void (async () => {
      for await (const response of answers) this.answer(response);
      throw new ClientError(PATH, Status.UNAVAILABLE, 'the bank ended the batch stream');
    })().catch((err: unknown) => this.broken(stream, err));
    return stream;
  }

  private answer(response: BatchStreamResponse): void {
    const p = this.pending.get(response.id);
    // Past its deadline (already failed), or after an abort.
    if (!p) return;
    this.pending.delete(response.id);
    p.timer.cancel();
    if (response.error) {
      p.reject(clientErrorOf(response.error));
    } else {
      const value = p.pick(response);
      if (value === undefined) p.reject(new ClientError(PATH, Status.INTERNAL, `the bank answered request ${response.id} with another kind of result`));
      else p.resolve(value);
    }
    this.endIfClosedAndIdle();
  }

  /** The stream failed or ended: its waiting calls fail with its error (or go unary). */
  private broken(stream: Stream, err: unknown): void {
    if (this.stream === stream) this.stream = undefined;
    stream.abort.abort();
    const fallBack = err instanceof ClientError && err.code === Status.UNIMPLEMENTED;
    if (fallBack) this.unsupported = true;
    for (const [id, p] of this.pending) {
      if (p.stream !== stream) continue;
      this.pending.delete(id);
      if (fallBack) {
        // The timer stays: the unary call has the same deadline and whichever ends first decides.
        p.unary(Math.max(1, p.deadlineAtMs - this.clock.nowMs())).then(p.resolve, p.reject).finally(() => p.timer.cancel());
      } else {
        p.timer.cancel();
        p.reject(err);
      }
    }
    this.endIfClosedAndIdle();
  }
}

/** The refusal as the unary call would have thrown it (with its ErrorInfo reason, if any). */
function clientErrorOf(error: BatchStreamError): ClientError {
  const code = error.code as Status;
  if (error.reason === '') return new ClientError(PATH, code, error.message);
  return new RichClientError(PATH, code, error.message, [ErrorInfo.fromPartial({ reason: error.reason, domain: ERROR_DOMAIN })]);
}

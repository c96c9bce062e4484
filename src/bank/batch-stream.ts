import { EventEmitter, on } from 'node:events';
import { ServerError } from 'nice-grpc-common';
import { BankServiceDefinition, type BankServiceImplementation, type BatchStreamRequest, type BatchStreamResponse } from '../gen/bank/v1/bank.js';
import { AppError } from '../core/errors.js';
import { isMalformed } from '../grpc/malformed.js';
import { reasonOfServerError, wireErrorOf } from '../middleware/server/errors.js';
import type { Logger } from '../logging/logger.js';

// The bank's side of BatchStream: the gateway's PrepareBatch / CommitBatch / AbortBatch calls as
// messages on one long-lived stream. Each request runs as soon as it arrives (a commit batch need
// not wait for the prepare batch before it: both may share one group commit) and is answered with
// its id when done. A failed request is answered alone with the status its unary call would have
// ended with (a refusal's, or INTERNAL for a bug, logged); the stream stays open for the others.

/** The unary batch calls a stream request stands for. */
export type BatchCalls = Pick<BankServiceImplementation, 'prepareBatch' | 'commitBatch' | 'abortBatch'>;

const PATH = `/${BankServiceDefinition.fullName}/BatchStream`;

type Context = Parameters<BankServiceImplementation['prepareBatch']>[1];

/** The open streams of one bank server, so that shutting down can end them. */
export class BatchStreams {
  private readonly open = new Set<() => void>();
  private closed = false;

  constructor(private readonly logger: Logger) {}

  /** The BatchStream handler over `calls` (the traced ones when tracing is on). */
  handler(calls: BatchCalls): BankServiceImplementation['batchStream'] {
    return (requests, context) => this.serve(requests, calls, context);
  }

  /**
   * Ends every open stream once its begun requests are answered, and refuses new ones: a graceful
   * server shutdown waits for open calls, and a stream would otherwise stay open as long as the
   * gateway keeps it.
   */
  close(): void {
    this.closed = true;
    for (const end of this.open) end();
    this.open.clear();
  }

  private async *serve(requests: AsyncIterable<BatchStreamRequest>, calls: BatchCalls, context: Context): AsyncGenerator<BatchStreamResponse> {
    if (this.closed) throw new AppError('SHUTTING_DOWN', 'the bank is shutting down');
    const answers = new EventEmitter();
    // Only while the loop below listens: an 'error' nobody listens to would throw.
    const fail = (err: unknown) => {
      if (answers.listenerCount('error') > 0) answers.emit('error', err);
    };
    let running = 0;
    let ending = false;
    const endIfIdle = () => {
      if (ending && running === 0) answers.emit('end');
    };
    const end = () => {
      ending = true;
      endIfIdle();
    };
    // Listening before any request is read, so that no answer can be emitted unheard.
    const answered = on(answers, 'answer', { close: ['end'], signal: context.signal });
    this.open.add(end);
    const read = async () => {
      for await (const request of requests) {
        if (ending) break;
        if (isMalformed(request)) throw new AppError('MALFORMED_REQUEST', 'a BatchStream request message is not valid');
        running += 1;
        void answer(request, calls, context, this.logger).then((response) => {
          running -= 1;
          answers.emit('answer', response);
          endIfIdle();
        }, fail);
      }
      end();
    };
    read().catch(fail);
    try {
      for await (const [response] of answered) {
        yield response as BatchStreamResponse;
      }
    } finally {
      this.open.delete(end);
    }
  }
}

async function answer(request: BatchStreamRequest, calls: BatchCalls, context: Context, logger: Logger): Promise<BatchStreamResponse> {
  const { id } = request;
  try {
    if (request.prepare) return { id, prepare: await calls.prepareBatch(request.prepare, context) } as BatchStreamResponse;
    if (request.commit) return { id, commit: await calls.commitBatch(request.commit, context) } as BatchStreamResponse;
    if (request.abort) return { id, abort: await calls.abortBatch(request.abort, context) } as BatchStreamResponse;
    throw new AppError('INVALID_ARGUMENT', 'a BatchStream request must carry prepare, commit or abort');
  } catch (err) {
    // As the error middleware maps a unary call's failure; a cancellation ends the stream.
    const wire = wireErrorOf(err, logger, PATH);
    if (!(wire instanceof ServerError)) throw wire;
    return { id, error: { code: wire.code, message: wire.details, reason: reasonOfServerError(wire) } };
  }
}

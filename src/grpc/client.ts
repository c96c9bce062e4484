import {
  createChannel,
  createClientFactory,
  Status,
  type CallOptions,
  type Channel,
  type Client,
  type CompatServiceDefinition,
} from 'nice-grpc';
import { deadlineMiddleware, type DeadlineOptions } from 'nice-grpc-client-middleware-deadline';
import { retryMiddleware, type RetryOptions } from 'nice-grpc-client-middleware-retry';
import { errorDetailsClientMiddleware } from 'nice-grpc-error-details';
import type { Logger } from '../logging/logger.js';
import { clientLoggingMiddleware } from '../middleware/client/logging.js';
import { channelCredentials, type TlsMaterial } from '../tls/credentials.js';

// Outbound calls, outermost first: log <- retry (UNAVAILABLE only, and only for methods the proto
// marks IDEMPOTENT / NO_SIDE_EFFECTS: the middleware reads idempotency_level) <- per-attempt deadline
// <- rich error details. Every call has a deadline. `lean` skips logging and retry (deadline only).

/** The limits of a client's calls, and its channel's reconnect back-off (config: grpc.*). */
export interface ClientCallLimits {
  /** Deadline of one attempt. */
  readonly callTimeoutMs: number;
  /** Total attempts for a retryable call (1 = no retry). */
  readonly retryMaxAttempts: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly reconnectBackoffInitialMs: number;
  readonly reconnectBackoffMaxMs: number;
}

/** A channel's reconnect back-off alone (config: grpc.*), for callers whose call limits are their own. */
export type ChannelLimits = Pick<ClientCallLimits, 'reconnectBackoffInitialMs' | 'reconnectBackoffMaxMs'>;

/** Options of a call through `client`, typed by the middlewares that read them (a misspelt key does not compile). */
type NodeCallOptions = CallOptions & RetryOptions & DeadlineOptions;

export interface NodeClient<D extends CompatServiceDefinition> {
  readonly client: Client<D, RetryOptions & DeadlineOptions>;
  /**
   * The same channel without the logging and retry middlewares: for callers that bound, retry and
   * log their calls themselves (the gateway's batched 2PC calls). Pass `deadline` with every call.
   */
  readonly lean: Client<D, DeadlineOptions>;
  readonly channel: Channel;
  close(): void;
}

export function createNodeClient<D extends CompatServiceDefinition>(
  definition: D,
  address: string,
  tls: TlsMaterial,
  logger: Logger,
  limits: ClientCallLimits,
): NodeClient<D> {
  const channel = createChannel(address, channelCredentials(tls), {
    // Fail a call fast while the peer is down instead of queueing it until the deadline.
    'grpc.initial_reconnect_backoff_ms': limits.reconnectBackoffInitialMs,
    'grpc.max_reconnect_backoff_ms': limits.reconnectBackoffMaxMs,
  });
  const client = createClientFactory()
    .use(clientLoggingMiddleware(logger, address))
    .use(retryMiddleware)
    .use(deadlineMiddleware)
    .use(errorDetailsClientMiddleware)
    .create(definition, channel, { '*': defaultCallOptions(limits) });
  const lean = createClientFactory().use(deadlineMiddleware).create(definition, channel);
  return { client, lean, channel, close: () => channel.close() };
}

/** The options every call through `client` starts from (a call site may override any of them). */
function defaultCallOptions(limits: ClientCallLimits): NodeCallOptions {
  return {
    deadline: limits.callTimeoutMs,
    // The middleware counts retries, not attempts.
    retryMaxAttempts: limits.retryMaxAttempts - 1,
    retryBaseDelayMs: limits.retryBaseDelayMs,
    retryMaxDelayMs: limits.retryMaxDelayMs,
    retryableStatuses: [Status.UNAVAILABLE],
  };
}

import type { ServerMiddleware } from 'nice-grpc-common';
import { labelNames, labelNamesWithCode, prometheusServerMiddleware } from 'nice-grpc-prometheus';
import { Counter, Histogram, type Registry } from 'prom-client';
import { LATENCY_SECONDS_BUCKETS } from './buckets.js';

// Server-side RPC metrics of one node: nice-grpc-prometheus's middleware, with its metrics
// registered on the node's own registry (its defaults live in a module-wide registry, which two
// nodes in one process would share). Names and labels are those of go-grpc-prometheus:
// grpc_service, grpc_method, grpc_type, grpc_path and, once a call ended, grpc_code.

/** The middleware counting and timing every call this node serves; outermost, so it sees the final status. */
export function rpcMetricsMiddleware(registry: Registry): ServerMiddleware {
  const registers = [registry];
  return prometheusServerMiddleware({
    serverStartedMetric: new Counter({
      name: 'grpc_server_started_total', help: 'RPCs started on the server.', labelNames, registers,
    }),
    serverHandledMetric: new Counter({
      name: 'grpc_server_handled_total', help: 'RPCs completed on the server, by status code.', labelNames: labelNamesWithCode, registers,
    }),
    serverStreamMsgReceivedMetric: new Counter({
      name: 'grpc_server_msg_received_total', help: 'Stream messages received by the server.', labelNames, registers,
    }),
    serverStreamMsgSentMetric: new Counter({
      name: 'grpc_server_msg_sent_total', help: 'Stream messages sent by the server.', labelNames, registers,
    }),
    serverHandlingSecondsMetric: new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Time from the start of an RPC to its end on the server, by status code (seconds).',
      labelNames: labelNamesWithCode,
      buckets: [...LATENCY_SECONDS_BUCKETS],
      registers,
    }),
  });
}

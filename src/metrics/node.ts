import type { ServerMiddleware } from 'nice-grpc-common';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { GroupCommitObserver } from '../core/group-commit.js';
import { consulWatchMetrics } from './consul.js';
import { groupCommitMetrics } from './group-commit.js';
import { rpcMetricsMiddleware } from './rpc.js';

// What every node measures, on a registry of its own (never prom-client's global one, so that
// nodes started in one process, as in tests, keep apart): RPCs, its group commit, its Consul
// watches, and Node.js process metrics. Every series carries the label node="gateway" / "BankA".

export class NodeMetrics {
  readonly registry = new Registry();
  /** The server middleware counting and timing RPCs (src/grpc/server.ts puts it outermost). */
  readonly rpc: ServerMiddleware;
  readonly groupCommit: GroupCommitObserver;
  /** For createDiscovery's onWatchState. */
  readonly consulWatch: (service: string, up: boolean) => void;

  constructor(node: string) {
    this.registry.setDefaultLabels({ node });
    collectDefaultMetrics({ register: this.registry });
    this.rpc = rpcMetricsMiddleware(this.registry);
    this.groupCommit = groupCommitMetrics(this.registry);
    this.consulWatch = consulWatchMetrics(this.registry);
  }
}

import type { Clock } from '../core/clock.js';
import { BankServiceDefinition } from '../gen/bank/v1/bank.js';
import type { Discovery } from '../discovery/discovery.js';
import { createNodeClient, type ClientCallLimits, type NodeClient } from '../grpc/client.js';
import type { Logger } from '../logging/logger.js';
import type { TlsMaterial } from '../tls/credentials.js';
import type { BankBatchClient } from './bank-batches.js';
import { BankBatchStream } from './bank-stream.js';

export type BankClient = NodeClient<typeof BankServiceDefinition>['client'];

interface Entry {
  readonly node: NodeClient<typeof BankServiceDefinition>;
  /** The driver's batched 2PC calls: on one BatchStream, or unary without logging and retry. */
  readonly batches: BankBatchClient;
  close(): void;
}

// One long-lived channel per bank address, reused by every call: no connection setup or discovery
// I/O on the hot path. A bank whose address changes gets a new channel.
export class BankClients {
  private readonly byAddress = new Map<string, Entry>();

  constructor(
    private readonly discovery: Discovery,
    private readonly tls: TlsMaterial,
    private readonly logger: Logger,
    private readonly limits: ClientCallLimits,
    private readonly clock: Clock,
    /** gateway.bankBatchStream: the 2PC batches as messages on one stream per bank. */
    private readonly batchStream: boolean,
  ) {}

  /** The client for the named bank, or undefined when discovery knows no healthy instance. */
  get(bank: string): BankClient | undefined {
    return this.entry(bank)?.node.client;
  }

  /** The driver's batched 2PC calls to the named bank (no logging or retry middleware), on the same channel. */
  lean(bank: string): BankBatchClient | undefined {
    return this.entry(bank)?.batches;
  }

  private entry(bank: string): Entry | undefined {
    const endpoint = this.discovery.bank(bank);
    if (!endpoint) return undefined;
    let entry = this.byAddress.get(endpoint.address);
    if (!entry) {
      const node = createNodeClient(BankServiceDefinition, endpoint.address, this.tls, this.logger, this.limits);
      const stream = this.batchStream ? new BankBatchStream(node.lean, this.clock) : undefined;
      entry = {
        node,
        batches: stream ?? node.lean,
        close: () => {
          stream?.close();
          node.close();
        },
      };
      this.byAddress.set(endpoint.address, entry);
    }
    return entry;
  }

  close(): void {
    for (const entry of this.byAddress.values()) entry.close();
    this.byAddress.clear();
  }
}

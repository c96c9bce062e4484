import { BankServiceDefinition } from '../gen/bank/v1/bank.js';
import type { Discovery } from '../discovery/discovery.js';
import { createNodeClient, type ClientCallLimits, type NodeClient } from '../grpc/client.js';
import type { Logger } from '../logging/logger.js';
import type { TlsMaterial } from '../tls/credentials.js';

export type BankClient = NodeClient<typeof BankServiceDefinition>['client'];
/** The same bank channel without logging and retry middlewares (the driver's batched 2PC calls). */
export type LeanBankClient = NodeClient<typeof BankServiceDefinition>['lean'];

// One long-lived channel per bank address, reused by every call: no connection setup or discovery
// I/O on the hot path. A bank whose address changes gets a new channel; the old one is closed.
export class BankClients {
  private readonly byAddress = new Map<string, NodeClient<typeof BankServiceDefinition>>();

  constructor(
    private readonly discovery: Discovery,
    private readonly tls: TlsMaterial,
    private readonly logger: Logger,
    private readonly limits: ClientCallLimits,
  ) {}

  /** The client for the named bank, or undefined when discovery knows no healthy instance. */
  get(bank: string): BankClient | undefined {
    return this.entry(bank)?.client;
  }

  /** The lean client (no logging or retry middleware) for the named bank, on the same channel. */
  lean(bank: string): LeanBankClient | undefined {
    return this.entry(bank)?.lean;
  }

  private entry(bank: string): NodeClient<typeof BankServiceDefinition> | undefined {
    const endpoint = this.discovery.bank(bank);
    if (!endpoint) return undefined;
    let entry = this.byAddress.get(endpoint.address);
    if (!entry) {
      entry = createNodeClient(BankServiceDefinition, endpoint.address, this.tls, this.logger, this.limits);
      this.byAddress.set(endpoint.address, entry);
    }
    return entry;
  }

  close(): void {
    for (const entry of this.byAddress.values()) entry.close();
    this.byAddress.clear();
  }
}

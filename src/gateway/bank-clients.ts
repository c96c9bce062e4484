import type { Clock, Timer } from '../core/clock.js';
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
  /**
   * Takes no new batches and ends its stream once the waiting ones are answered; closes the channel
   * after the retired grace, then runs `closed`.
   */
  retire(closed: () => void): void;
}

// One long-lived channel per bank address, reused by every call: no connection setup or discovery
// I/O on the hot path. A bank whose address changes gets a new channel, and the old address's
// channel is retired when the move is first seen (the next call to that bank): its BatchStream
// takes no new batches and ends after its last waiting one; the channel itself closes once every
// unary call begun on it before the move is past its last retry (grpc-js lets a closed channel
// finish the calls under way, but refuses a new attempt with a plain Error, not UNAVAILABLE).
export class BankClients {
  private readonly byAddress = new Map<string, Entry>();
  /** The address each bank was last reached at. */
  private readonly addressOf = new Map<string, string>();
  /** Retired entries whose channel is not closed yet. */
  private readonly retiring = new Set<Entry>();
  /** How long a retired channel stays open: the longest a unary call on it can take, retries included. */
  private readonly retiredGraceMs: number;

  constructor(
    private readonly discovery: Discovery,
    private readonly tls: TlsMaterial,
    private readonly logger: Logger,
    private readonly limits: ClientCallLimits,
    private readonly clock: Clock,
    /** gateway.bankBatchStream: the 2PC batches as messages on one stream per bank. */
    private readonly batchStream: boolean,
  ) {
    const { retryMaxAttempts, callTimeoutMs, retryMaxDelayMs } = limits;
    this.retiredGraceMs = retryMaxAttempts * callTimeoutMs + (retryMaxAttempts - 1) * retryMaxDelayMs;
  }

  /** The client for the named bank, or undefined when discovery knows no healthy instance. */
  get(bank: string): BankClient | undefined {
    return this.entry(bank)?.node.client;
  }

  /** The driver's batched 2PC calls to the named bank (no logging or retry middleware), on the same channel. */
  lean(bank: string): BankBatchClient | undefined {
    return this.entry(bank)?.batches;
  }

  /** Channels open: one per current bank address, plus retired ones not closed yet. */
  get openChannels(): number {
    return this.byAddress.size + this.retiring.size;
  }

  private entry(bank: string): Entry | undefined {
    const endpoint = this.discovery.bank(bank);
    if (!endpoint) return undefined;
    const previous = this.addressOf.get(bank);
    if (previous !== endpoint.address) {
      this.addressOf.set(bank, endpoint.address);
      if (previous !== undefined) this.retire(previous);
    }
    let entry = this.byAddress.get(endpoint.address);
    if (!entry) {
      const node = createNodeClient(BankServiceDefinition, endpoint.address, this.tls, this.logger, this.limits);
      const stream = this.batchStream ? new BankBatchStream(node.lean, this.clock) : undefined;
      let grace: Timer | undefined;
      entry = {
        node,
        batches: stream ?? node.lean,
        close: () => {
          grace?.cancel();
          stream?.close();
          node.close();
        },
        retire: (closed) => {
          stream?.retire();
          grace = this.clock.setTimer(this.retiredGraceMs, () => {
            node.close();
            closed();
          }, { background: true });
        },
      };
      this.byAddress.set(endpoint.address, entry);
    }
    return entry;
  }

  /** `address` is no bank's address any more: no new lookups find it, and its channel closes after the grace. */
  private retire(address: string): void {
    for (const current of this.addressOf.values()) if (current === address) return;
    const entry = this.byAddress.get(address);
    if (!entry) return;
    this.byAddress.delete(address);
    this.retiring.add(entry);
    entry.retire(() => this.retiring.delete(entry));
  }

  close(): void {
    for (const entry of [...this.byAddress.values(), ...this.retiring]) entry.close();
    this.byAddress.clear();
    this.retiring.clear();
  }
}

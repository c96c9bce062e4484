import type { Config } from '../config/schema.js';
import { dialAddress } from '../tls/credentials.js';
import type { Discovery, Endpoint } from './discovery.js';

// Addresses straight from config.json: each bank's `address`, or its host:port.
export class StaticDiscovery implements Discovery {
  private readonly banks: ReadonlyMap<string, Endpoint>;
  private readonly gatewayEndpoint: Endpoint;

  constructor(config: Pick<Config, 'banks' | 'client'>) {
    this.banks = new Map(
      Object.entries(config.banks).map(([name, b]) => [name, { address: b.address ?? dialAddress(b.host, b.port) }]),
    );
    this.gatewayEndpoint = { address: config.client.gatewayAddress };
  }

  bank(name: string): Endpoint | undefined {
    return this.banks.get(name);
  }

  bankNames(): readonly string[] {
    return [...this.banks.keys()];
  }

  gateway(): Endpoint | undefined {
    return this.gatewayEndpoint;
  }

  onChange(): () => void {
    return () => {};
  }

  async close(): Promise<void> {}
}

import type { Config } from '../config/schema.js';
import { dialAddress } from '../tls/credentials.js';
import type { Discovery, Endpoint } from './discovery.js';

// Addresses straight from config.json: each bank's `address`, or its host:port.
export class StaticDiscovery implements Discovery {
  private readonly banks: ReadonlyMap<string, Endpoint>;
  private readonly gatewayEndpoints: readonly Endpoint[];

  constructor(config: Pick<Config, 'banks' | 'client'>) {
    this.banks = new Map(
      Object.entries(config.banks).map(([name, b]) => [name, { address: b.address ?? dialAddress(b.host, b.port) }]),
    );
    // client.gatewayAddress: one host:port or several, comma-separated.
    this.gatewayEndpoints = config.client.gatewayAddress.split(',').map((a) => a.trim()).filter((a) => a).map((address) => ({ address }));
  }

  bank(name: string): Endpoint | undefined {
    return this.banks.get(name);
  }

  bankNames(): readonly string[] {
    return [...this.banks.keys()];
  }

  gateways(): readonly Endpoint[] {
    return this.gatewayEndpoints;
  }

  onChange(): () => void {
    return () => {};
  }

  async close(): Promise<void> {}
}

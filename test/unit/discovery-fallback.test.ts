import { expect } from 'chai';
import net from 'node:net';
import { ConfigSchema } from '../../src/config/schema.js';
import { createDiscovery, resolveGatewayAddress } from '../../src/discovery/create.js';
import { silentLogger } from '../../src/logging/logger.js';

// Without a reachable Consul agent: static discovery with a visible notice (or, when fallback is
// off, a Consul discovery that keeps trying without crashing).

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('discovery without a Consul agent', () => {
  const configWith = async (consul: Record<string, unknown>) =>
    ConfigSchema.parse({
      discovery: { mode: 'consul' },
      consul: { httpPort: await closedPort(), requestTimeoutMs: 500, ...consul },
      banks: { BankA: { port: 50051, dataDir: 'x' } },
      client: { gatewayAddress: 'localhost:50050' },
    });

  it('falls back to static discovery and says so', async () => {
    const notices: string[] = [];
    const setup = await createDiscovery(await configWith({}), silentLogger(), 'gateway', { notice: (l) => notices.push(l) });
    try {
      expect(setup.mode).to.equal('static');
      expect(setup.discovery.bank('BankA')).to.deep.equal({ address: 'localhost:50051' });
      expect(notices).to.have.length(1);
      expect(notices[0]).to.match(/^NOTICE: no Consul agent at 127\.0\.0\.1:\d+ .*static discovery/);
    } finally {
      await setup.close();
    }
  });

  it('with fallbackToStatic off, stays on Consul, knows no address yet, and closes cleanly', async () => {
    const notices: string[] = [];
    const setup = await createDiscovery(await configWith({ fallbackToStatic: false }), silentLogger(), 'gateway', { notice: (l) => notices.push(l) });
    expect(setup.mode).to.equal('consul');
    expect(notices).to.deep.equal([]);
    expect(setup.discovery.bank('BankA')).to.equal(undefined);
    // A configured bank is still known by name (so a transfer to it is UNAVAILABLE, not NOT_FOUND).
    expect(setup.discovery.bankNames()).to.deep.equal(['BankA']);
    await new Promise((r) => setTimeout(r, 300));
    await setup.close();
  });

  it('lets the client fall back to client.gatewayAddress with a notice', async () => {
    const notices: string[] = [];
    const address = await resolveGatewayAddress(await configWith({}), { notice: (l) => notices.push(l) });
    expect(address).to.equal('localhost:50050');
    expect(notices[0]).to.match(/^NOTICE: no Consul agent .*client\.gatewayAddress localhost:50050/);
  });
});

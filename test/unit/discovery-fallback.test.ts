import { expect } from 'chai';
import net from 'node:net';
import winston from 'winston';
import { ConfigSchema } from '../../src/config/schema.js';
import { createDiscovery, resolveGatewayAddress } from '../../src/discovery/create.js';
import { silentLogger } from '../../src/logging/logger.js';
import { eventually } from '../helpers/cluster.js';

/** Counts of the handles and requests keeping the event loop alive, by kind. */
function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

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
    const warnings: string[] = [];
    const logger = winston.createLogger({
      level: 'warn',
      transports: [new winston.transports.Console({ silent: true })],
    });
    logger.on('data', (info: { message: string }) => warnings.push(info.message));
    // Measured after a turn: mocha arms the test's own timeout timer once the test goes async.
    await new Promise((r) => setImmediate(r));
    const before = activeResources();
    const setup = await createDiscovery(await configWith({ fallbackToStatic: false }), logger, 'gateway', { notice: (l) => notices.push(l) });
    expect(setup.mode).to.equal('consul');
    expect(notices).to.deep.equal([]);
    expect(setup.discovery.bank('BankA')).to.equal(undefined);
    // A configured bank is still known by name (so a transfer to it is UNAVAILABLE, not NOT_FOUND).
    expect(setup.discovery.bankNames()).to.deep.equal(['BankA']);
    // Its watch ran, failed against the closed port, and keeps trying (it did not crash).
    await eventually(async () => warnings.includes('consul unreachable; keeping the last known addresses'), 20_000, 'the watch reporting the outage');
    expect(activeResources().get('Timeout') ?? 0).to.be.greaterThan(before.get('Timeout') ?? 0);
    await setup.close();
    // Closed: the watch stops retrying, so no timer or socket of it stays (a running watch always
    // has its back-off timer or its request pending). The HTTP library's own request timer may
    // outlive close() by up to requestTimeoutMs, hence "eventually".
    await eventually(async (note) => {
      const after = activeResources();
      note(JSON.stringify([...after]));
      return ['Timeout', 'TCPSocketWrap', 'TCPWRAP'].every((kind) => (after.get(kind) ?? 0) <= (before.get(kind) ?? 0));
    }, 20_000, 'the closed discovery releasing its timers and sockets');
  });

  it('lets the client fall back to client.gatewayAddress with a notice', async () => {
    const notices: string[] = [];
    const address = await resolveGatewayAddress(await configWith({}), { notice: (l) => notices.push(l) });
    expect(address).to.equal('localhost:50050');
    expect(notices[0]).to.match(/^NOTICE: no Consul agent .*client\.gatewayAddress localhost:50050/);
  });
});

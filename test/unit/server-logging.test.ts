import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { HealthDefinition, HealthServiceImpl, HealthState } from 'nice-grpc-server-health';
import winston from 'winston';
import { createNodeClient } from '../../src/grpc/client.js';
import { createNodeServer, listenTls } from '../../src/grpc/server.js';
import { silentLogger } from '../../src/logging/logger.js';
import { loadTls } from '../../src/tls/credentials.js';
import { eventually } from '../helpers/cluster.js';
import { DEFAULT_CONFIG } from '../helpers/clock.js';
import type { LogLine } from '../helpers/logs.js';

// The per-call log line of every node's server (src/middleware/server/logging.ts): a successful
// call is logged at info only when it took logging.slowCallMs or more, otherwise at debug.

describe('server call logging: logging.slowCallMs', function () {
  this.timeout(30_000);
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-server-logging-'));
    execFileSync(path.resolve('scripts/gen-certs.sh'), [path.join(dir, 'certs')], { stdio: 'ignore' });
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Makes one successful health check against a server with `slowCallMs`; returns what it logged at info. */
  async function linesOfOneCall(slowCallMs: number, expectLines: number): Promise<LogLine[]> {
    const lines: LogLine[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as LogLine);
        done();
      },
    });
    const logger = winston.createLogger({ level: 'info', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] });
    const server = createNodeServer(logger, { ...DEFAULT_CONFIG.logging, slowCallMs });
    const health = HealthState();
    health.setStatus('healthy');
    server.add(HealthDefinition, HealthServiceImpl(health));
    const port = await listenTls(server, '127.0.0.1', 0, loadTls(path.join(dir, 'certs'), 'gateway'));
    const client = createNodeClient(HealthDefinition, `localhost:${port}`, loadTls(path.join(dir, 'certs'), 'client'),
      silentLogger(), { callTimeoutMs: 5000, retryMaxAttempts: 1, retryBaseDelayMs: 10, retryMaxDelayMs: 10, ...DEFAULT_CONFIG.grpc });
    try {
      await client.client.check({ service: '' });
      // A failed call is logged at info whatever the threshold: the marker that every line is in.
      await client.client.check({ service: 'no-such-service' }).catch(() => undefined);
      await eventually(async () => lines.some((l) => l.code === 'NOT_FOUND'));
      expect(lines, JSON.stringify(lines)).to.have.length(expectLines);
      return lines;
    } finally {
      client.close();
      await server.shutdown();
    }
  }

  it('0: every successful call is logged at info, with its duration', async () => {
    const [ok] = await linesOfOneCall(0, 2);
    expect(ok).to.include({ message: 'rpc', level: 'info', method: '/grpc.health.v1.Health/Check', code: 'OK', slow: true });
    expect(ok?.durationMs).to.be.a('number');
  });

  it('a successful call under the threshold is not logged at info; a failure is', async () => {
    const [failed] = await linesOfOneCall(3_600_000, 1);
    expect(failed).to.include({ message: 'rpc', level: 'info', method: '/grpc.health.v1.Health/Check', code: 'NOT_FOUND' });
  });
});

import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.js';

describe('config', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-config-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function write(obj: unknown): string {
    const file = path.join(dir, `c${Math.random()}.json`);
    fs.writeFileSync(file, JSON.stringify(obj));
    return file;
  }

  it('fills defaults and applies env and --set overrides in order', () => {
    const file = write({ gateway: { port: 1111 }, banks: { BankA: { port: 1, dataDir: 'a' } } });
    const c = loadConfig({
      path: file,
      env: { PAYMENTS__GATEWAY__PORT: '2222', PAYMENTS__BANKS__BANKA__PORT: '3', PAYMENTS__GATEWAY__PREPARETIMEOUTMS: '750' },
      sets: ['gateway.port=3333'],
    });
    expect(c.gateway.port).to.equal(3333);
    expect(c.gateway.prepareTimeoutMs).to.equal(750);
    expect(c.banks.BankA?.port).to.equal(3);
    expect(c.gateway.tokenTtlSeconds).to.equal(3600);
    expect(c.gateway.host).to.equal('127.0.0.1');
  });

  it('reports a bad value by its field name', () => {
    const file = write({ gateway: { prepareTimeoutMs: -5 }, banks: { BankA: { port: 'x', dataDir: 'a' } } });
    expect(() => loadConfig({ path: file, env: {} })).to.throw(ConfigError, /gateway\.prepareTimeoutMs[\s\S]*banks\.BankA\.port/);
    expect(() => loadConfig({ path: write({ gatway: {} }), env: {} })).to.throw(ConfigError, /gatway/);
    expect(() => loadConfig({ path: path.join(dir, 'missing.json'), env: {} })).to.throw(ConfigError, /no such file/);
  });

  it('bounds the login throttle and the message size, and refuses a back-off start above its max (login, reconnect)', () => {
    const c = loadConfig({ path: write({}), env: {} });
    expect(c.gateway).to.include({ maxReceiveMessageBytes: 65_536, loginAccountFailuresMax: 5, loginBackoffMaxMs: 900_000 });
    expect(c.bank).to.include({ passwordChecksMax: 2, passwordCheckQueueMax: 32 });
    expect(() => loadConfig({ path: write({ gateway: { loginBackoffBaseMs: 10_000, loginBackoffMaxMs: 1000 } }), env: {} }))
      .to.throw(ConfigError, /gateway\.loginBackoffBaseMs/);
    expect(() => loadConfig({ path: write({ gateway: { maxReceiveMessageBytes: 64 * 1024 * 1024 } }), env: {} }))
      .to.throw(ConfigError, /gateway\.maxReceiveMessageBytes/);
    expect(c.grpc).to.deep.equal({ reconnectBackoffInitialMs: 200, reconnectBackoffMaxMs: 1000 });
    expect(c.metrics).to.deep.equal({ host: '127.0.0.1', connectionsMax: 16, requestTimeoutMs: 10_000 });
    expect(c.gateway.verifiedTokensMax).to.equal(10_000);
    expect(c.logging.slowCallMs).to.equal(1000);
    expect(c.gateway).to.include({ idempotencyPruneBatchesPerRoundMax: 20, tokenKeyRefreshMinIntervalMs: 1000 });
    expect(() => loadConfig({ path: write({ logging: { slowCallMs: -1 } }), env: {} })).to.throw(ConfigError, /logging\.slowCallMs/);
    expect(() => loadConfig({ path: write({ grpc: { reconnectBackoffInitialMs: 5000 } }), env: {} }))
      .to.throw(ConfigError, /grpc\.reconnectBackoffInitialMs/);
  });

  it('metrics endpoints: off unless a port is set, on loopback by default; env and --set reach the ports', () => {
    const off = loadConfig({ path: write({ banks: { BankA: { port: 1, dataDir: 'a' } } }), env: {} });
    expect(off.gateway.metricsPort).to.equal(undefined);
    expect(off.banks.BankA?.metricsPort).to.equal(undefined);
    expect(off.metrics.host).to.equal('127.0.0.1');
    const on = loadConfig({
      path: write({ banks: { BankA: { port: 1, dataDir: 'a' } } }),
      env: { PAYMENTS__GATEWAY__METRICSPORT: '9450', PAYMENTS__BANKS__BANKA__METRICSPORT: '0' },
      sets: ['metrics.host=::1'],
    });
    expect(on.gateway.metricsPort).to.equal(9450);
    expect(on.banks.BankA?.metricsPort).to.equal(0);
    expect(on.metrics.host).to.equal('::1');
    expect(() => loadConfig({ path: write({ gateway: { metricsPort: 70_000 } }), env: {} })).to.throw(ConfigError, /gateway\.metricsPort/);
  });

  it('a node started with a bad config exits non-zero naming the field', () => {
    const file = write({ gateway: { port: 70000 } });
    const r = spawnSync(path.resolve('bin/gateway'), ['--config', file], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).to.not.equal(0);
    expect(r.stderr).to.match(/gateway\.port/);
  });
});

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type pg from 'pg';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { connectPostgres, type PostgresSettings } from '../../src/gateway/store/postgres-connect.js';
import { silentLogger } from '../../src/logging/logger.js';
import { PostgresServer } from '../helpers/postgres.js';

// TLS from the gateway to its PostgreSQL (gateway.postgres.ssl, sslCaFile): the server's
// certificate is always verified, against a private CA when one is configured.

describe('gateway -> PostgreSQL over TLS', function () {
  this.timeout(120_000);
  let server: PostgresServer;
  let certs: string;
  const pools: pg.Pool[] = [];

  before(async () => {
    certs = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-pg-tls-'));
    execFileSync(path.resolve('scripts/gen-certs.sh'), [certs], { stdio: 'ignore' });
    server = await PostgresServer.start();
    // Any certificate of our CA issued for 127.0.0.1 serves as the database's (the gateway's here).
    await server.enableTls(path.join(certs, 'gateway.crt'), path.join(certs, 'gateway.key'));
  });

  after(async () => {
    for (const p of pools) await p.end();
    await server?.stop();
    fs.rmSync(certs, { recursive: true, force: true });
  });

  /** What connecting with `settings` refused with (a pool that did open is closed at the end). */
  async function refusal(settings: PostgresSettings): Promise<unknown> {
    return connectPostgres(settings, silentLogger(), 'tls-refused').then((pool) => { pools.push(pool); return undefined; }, (err: unknown) => err);
  }

  it('connects over TLS when the server’s certificate verifies against sslCaFile', async () => {
    const pool = await connectPostgres({ ...server.settings, ssl: true, sslCaFile: path.join(certs, 'ca.crt') }, silentLogger(), 'tls');
    pools.push(pool);
    const res = await pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(res.rows[0]?.ssl).to.equal(true);
  });

  it('refuses a server whose certificate its CAs did not issue (the system’s, without sslCaFile)', async () => {
    expect(String(await refusal({ ...server.settings, ssl: true }))).to.match(/certificate/i);
  });

  it('names an unreadable sslCaFile, and refuses sslCaFile without ssl in the config', async () => {
    const missing = path.join(certs, 'no-such-ca.crt');
    expect(String(await refusal({ ...server.settings, ssl: true, sslCaFile: missing }))).to.include(`gateway.postgres.sslCaFile ${missing}`);
    const file = path.join(certs, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ gateway: { postgres: { sslCaFile: path.join(certs, 'ca.crt') } } }));
    expect(() => loadConfig({ path: file, env: {} })).to.throw(ConfigError, /gateway\.postgres\.sslCaFile/);
  });
});

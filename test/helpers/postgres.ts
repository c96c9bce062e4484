import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PostgresSettings } from '../../src/gateway/store/postgres-connect.js';
import { ROOT } from './processes.js';

// A real PostgreSQL server for a test file: scripts/pg-dev.sh in a temp folder on a free loopback
// port (installing PostgreSQL first if the machine has none, as CI does). A test that cannot get
// one fails loudly; it never skips.

const run = promisify(execFile);
const SCRIPT = path.join(ROOT, 'scripts/pg-dev.sh');

export class PostgresServer {
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async start(): Promise<PostgresServer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-pg-'));
    try {
      const { stdout } = await run(SCRIPT, ['start', path.join(dir, 'pg')], { timeout: 120_000 });
      const port = Number(stdout.trim().split('\n').pop());
      if (!Number.isInteger(port) || port <= 0) throw new Error(`pg-dev.sh start printed no port: ${stdout}`);
      return new PostgresServer(dir, port);
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`could not start PostgreSQL for the test (scripts/pg-dev.sh): ${(err as Error).message}`);
    }
  }

  /** Connection settings for config gateway.postgres. */
  get settings(): PostgresSettings {
    return {
      host: '127.0.0.1', port: this.port, database: 'payments', user: 'payments', ssl: false,
      poolMax: 10, connectTimeoutMs: 5000, statementTimeoutMs: 10_000,
    };
  }

  /** Runs SQL as the superuser through psql's -c (setup and checks outside the code under test). */
  async psql(sql: string): Promise<string> {
    const bindir = (await run(path.join(ROOT, 'scripts/install-postgres.sh'))).stdout.trim().split('\n').pop()!;
    const args = ['-q', '-At', '-h', '127.0.0.1', '-p', String(this.port), '-U', 'payments', '-d', 'payments', '-c', sql];
    const { stdout } = process.getuid?.() === 0
      ? await run('runuser', ['-u', 'postgres', '--', path.join(bindir, 'psql'), ...args])
      : await run(path.join(bindir, 'psql'), args);
    return stdout.trim();
  }

  /** The server's data folder (pg-dev.sh's DIR). */
  get dataDir(): string {
    return path.join(this.dir, 'pg');
  }

  /**
   * A synchronous streaming standby of this server (pg-dev.sh standby): from then on this server
   * acknowledges a commit only once the standby has flushed it too.
   */
  async startStandby(): Promise<PostgresServer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-pg-standby-'));
    const { stdout } = await run(SCRIPT, ['standby', this.dataDir, path.join(dir, 'pg')], { timeout: 120_000 });
    const standby = new PostgresServer(dir, Number(stdout.trim().split('\n').pop()));
    // Synchronous from here on: pg_stat_replication says so once the reload took effect.
    for (let i = 0; i < 200; i++) {
      if ((await this.psql(`SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'`)) === 'sync') return standby;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the standby did not become synchronous');
  }

  /** The server dies at once (SIGKILL), as in a crash. */
  async kill(): Promise<void> {
    await run(SCRIPT, ['kill', this.dataDir], { timeout: 60_000 });
  }

  /** A standby becomes a primary. */
  async promote(): Promise<void> {
    await run(SCRIPT, ['promote', this.dataDir], { timeout: 60_000 });
  }

  /** TLS on, with this certificate and key (pg-dev.sh tls); connections without TLS still work. */
  async enableTls(certFile: string, keyFile: string): Promise<void> {
    await run(SCRIPT, ['tls', this.dataDir, certFile, keyFile], { timeout: 60_000 });
  }

  async stop(): Promise<void> {
    await run(SCRIPT, ['stop', this.dataDir], { timeout: 60_000 });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

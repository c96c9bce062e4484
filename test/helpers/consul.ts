import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createConsul, type ConsulApi } from '../../src/discovery/consul-client.js';
import { requireConsul, writeDevAgentConfig } from '../../src/discovery/consul-agent.js';
import { ROOT } from './processes.js';

// A real Consul dev agent for integration tests: free ports on 127.0.0.1, config and data in a
// temp folder, TLS for its gRPC checks from the test's CA (the `consul` client certificate).
// The binary comes from ./tools/bin (scripts/install-consul.sh) or the PATH; if neither has one,
// the install script runs; if that fails the test fails (it never skips silently).

const START_TIMEOUT_MS = 20_000;

export interface CheckInfo {
  readonly serviceId: string;
  readonly status: string;
  readonly output: string;
}

export class ConsulAgent {
  private child: ChildProcess | undefined;
  private out = '';
  readonly client: ConsulApi;

  private constructor(
    readonly binary: string,
    readonly dir: string,
    readonly httpPort: number,
    private readonly configFile: string,
  ) {
    this.client = createConsul({ host: '127.0.0.1', httpPort });
  }

  /** Starts an agent that checks over TLS with certsDir/consul.{crt,key} and trusts certsDir/ca.crt. */
  static async start(certsDir: string): Promise<ConsulAgent> {
    const binary = requireConsul(ROOT);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'consul-it-'));
    const { configFile, httpPort } = await writeDevAgentConfig(dir, 'payments-test', certsDir);
    const agent = new ConsulAgent(binary, dir, httpPort, configFile);
    await agent.launch();
    return agent;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** (Re)starts the agent on the same ports (a dev agent starts empty). */
  async launch(): Promise<void> {
    if (this.running) return;
    this.out = '';
    const child = spawn(this.binary, ['agent', '-dev', '-config-file', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.on('data', (c: Buffer) => (this.out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (this.out += c.toString()));
    const end = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (!this.running) throw new Error(`consul exited at start:\n${this.out}`);
      try {
        const leader = await this.client.status.leader({ timeout: 1000 });
        if (typeof leader === 'string' && leader.length > 0) return;
      } catch {
        // not up yet
      }
      if (Date.now() > end) throw new Error(`consul did not elect itself leader within ${START_TIMEOUT_MS} ms:\n${this.out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  async close(): Promise<void> {
    await this.stop('SIGKILL');
    this.client.destroy();
    if (!process.env.KEEP_TEST_DIRS) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The `consul` config section nodes need to use this agent (fast intervals for tests). */
  nodeSettings(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      host: '127.0.0.1',
      httpPort: this.httpPort,
      requestTimeoutMs: 1000,
      checkIntervalMs: 500,
      checkTimeoutMs: 1000,
      watchWaitSeconds: 5,
      watchRetryBaseDelayMs: 100,
      watchRetryMaxDelayMs: 500,
      registrationRefreshMs: 500,
      ...extra,
    };
  }

  /** Health checks of a service's instances (all states). */
  async checks(service: string): Promise<CheckInfo[]> {
    const list = (await this.client.health.checks({ service, timeout: 2000 })) as unknown as {
      ServiceID: string;
      Status: string;
      Output: string;
    }[];
    return list.map((c) => ({ serviceId: c.ServiceID, status: c.Status, output: c.Output }));
  }

  async statusOf(service: string, serviceId: string): Promise<string | undefined> {
    return (await this.checks(service)).find((c) => c.serviceId === serviceId)?.status;
  }

  /** Service ids registered with the agent. */
  async serviceIds(): Promise<string[]> {
    const list = (await this.client.agent.service.list({ timeout: 2000 })) as Record<string, unknown>;
    return Object.keys(list);
  }

  output(): string {
    return this.out;
  }
}

/**
 * Waits until `check` returns true, polling every 100 ms; returns the elapsed ms (printed by the
 * tests, never asserted). The bound only keeps a broken system from hanging the suite: it is
 * generous because a loaded CI machine is slow.
 */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const start = Date.now();
  for (;;) {
    let ok = false;
    try {
      ok = await check();
    } catch {
      ok = false;
    }
    if (ok) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

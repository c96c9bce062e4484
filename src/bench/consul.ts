import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeDevAgentConfig } from '../discovery/consul-agent.js';

// The Consul dev agent of a launched benchmark system: the binary from ./tools/bin or the PATH
// (scripts/install-consul.sh installs one when there is none), config and output in the bench
// folder, free ports on 127.0.0.1, and gRPC health checks over mutual TLS with the `consul` client
// certificate of the bench's CA (enable_agent_tls_for_checks), as scripts/consul-dev.sh does.

/** How long the agent may take to elect itself leader. */
export const CONSUL_START_TIMEOUT_MS = 20_000;
/** How long the banks may take to turn passing in Consul (first check after the check interval). */
export const CONSUL_PASSING_TIMEOUT_MS = 30_000;
/** How long the agent may take to exit after SIGTERM before it is killed. */
export const CONSUL_STOP_TIMEOUT_MS = 5_000;
/** GET http://127.0.0.1:<port><path> as JSON; undefined when the agent does not answer (yet). */
async function getJson(httpPort: number, urlPath: string): Promise<unknown> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}${urlPath}`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return undefined;
    return (await res.json()) as unknown;
  } catch {
    return undefined;
  }
}

export interface BenchConsul {
  readonly binary: string;
  readonly pid: number;
  readonly httpPort: number;
  /** Instances of `service` whose every check passes. */
  passing(service: string): Promise<number>;
  /** SIGTERM, then SIGKILL after CONSUL_STOP_TIMEOUT_MS; idempotent. */
  stop(): Promise<void>;
}

/** Starts a dev agent with config in `dir`/consul and output in `logFile`; resolves once it is leader. */
export async function startConsul(binary: string, dir: string, certsDir: string, logFile: string): Promise<BenchConsul> {
  const { configFile, httpPort: http } = await writeDevAgentConfig(path.join(dir, 'consul'), 'payments-bench', certsDir);
  const out = fs.createWriteStream(logFile);
  const child: ChildProcess = spawn(binary, ['agent', '-dev', '-config-file', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (running()) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), CONSUL_STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      out.end();
    })();
    return stopping;
  };
  const agent: BenchConsul = {
    binary,
    pid: child.pid!,
    httpPort: http,
    passing: async (service) => {
      const list = await getJson(http, `/v1/health/service/${encodeURIComponent(service)}?passing=true`);
      return Array.isArray(list) ? list.length : 0;
    },
    stop,
  };
  const end = Date.now() + CONSUL_START_TIMEOUT_MS;
  for (;;) {
    if (!running()) {
      await stop();
      throw new Error(`consul exited at start (see ${logFile})`);
    }
    const leader = await getJson(http, '/v1/status/leader');
    if (typeof leader === 'string' && leader.length > 0) return agent;
    if (Date.now() > end) {
      await stop();
      throw new Error(`consul did not elect itself leader within ${CONSUL_START_TIMEOUT_MS} ms (see ${logFile})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until `count` instances of `service` pass their checks in Consul. */
export async function waitForPassing(agent: BenchConsul, service: string, count: number, timeoutMs = CONSUL_PASSING_TIMEOUT_MS): Promise<number> {
  const began = Date.now();
  for (;;) {
    const n = await agent.passing(service);
    if (n >= count) return Date.now() - began;
    if (Date.now() - began > timeoutMs) throw new Error(`only ${n} of ${count} ${service} instances passing in Consul after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

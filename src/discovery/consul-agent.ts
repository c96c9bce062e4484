import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

// What it takes to run a local Consul dev agent for the project's own tools (the benchmark's
// system, the test harness): find or install the binary, pick free loopback ports, and write an
// agent config whose gRPC health checks use mutual TLS with our CA's `consul` client certificate
// (enable_agent_tls_for_checks; Consul 1.8 has no per-check TLS server name).

/** Bound of scripts/install-consul.sh (a download from Debian's mirror). */
export const CONSUL_INSTALL_TIMEOUT_MS = 5 * 60_000;

/** A consul binary in <root>/tools/bin or on the PATH, if any. */
export function findConsul(root: string): string | undefined {
  const local = path.join(root, 'tools/bin/consul');
  if (fs.existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'consul');
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The consul binary, installing it with scripts/install-consul.sh when there is none; throws if impossible. */
export function requireConsul(root: string): string {
  const found = findConsul(root);
  if (found) return found;
  let out: string;
  try {
    out = execFileSync(path.join(root, 'scripts/install-consul.sh'), {
      cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: CONSUL_INSTALL_TIMEOUT_MS,
    });
  } catch (err) {
    throw new Error(`no consul binary, and scripts/install-consul.sh could not install one: ${(err as Error).message}`);
  }
  const bin = out.trim().split('\n').pop()?.trim();
  if (bin && fs.existsSync(bin)) return path.resolve(root, bin);
  throw new Error('scripts/install-consul.sh gave no consul binary');
}

/** `count` distinct ports that were free on 127.0.0.1 a moment ago. */
export async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((srv.address() as net.AddressInfo).port);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
  return ports;
}

export interface DevAgentConfig {
  readonly configFile: string;
  readonly httpPort: number;
}

/** Writes `<dir>/agent.json` for `consul agent -dev -config-file ...` on free loopback ports. */
export async function writeDevAgentConfig(dir: string, nodeName: string, certsDir: string): Promise<DevAgentConfig> {
  const [http, server, lan, wan] = await freeLoopbackPorts(4);
  fs.mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'agent.json');
  fs.writeFileSync(configFile, JSON.stringify({
    node_name: nodeName,
    bind_addr: '127.0.0.1',
    client_addr: '127.0.0.1',
    disable_update_check: true,
    log_level: 'warn',
    ports: { http, dns: -1, grpc: -1, server, serf_lan: lan, serf_wan: wan },
    enable_agent_tls_for_checks: true,
    ca_file: path.join(certsDir, 'ca.crt'),
    cert_file: path.join(certsDir, 'consul.crt'),
    key_file: path.join(certsDir, 'consul.key'),
    server_name: 'localhost',
  }, null, 2));
  return { configFile, httpPort: http! };
}

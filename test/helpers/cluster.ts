import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { Metadata } from 'nice-grpc';
import { BankServiceDefinition } from '../../src/gen/bank/v1/bank.js';
import { CoordinatorServiceDefinition } from '../../src/gen/coordinator/v1/coordinator.js';
import { GatewayServiceDefinition } from '../../src/gen/payments/v1/gateway.js';
import { createNodeClient, type NodeClient } from '../../src/grpc/client.js';
import { reasonOf } from '../../src/grpc/errors.js';
import { silentLogger } from '../../src/logging/logger.js';
import { loadTls } from '../../src/tls/credentials.js';
import { ROOT, runBin, startNode, stopNode, type NodeProcess } from './processes.js';
import { DEFAULT_CONFIG } from './clock.js';

// A whole system for integration tests: real bank and gateway processes over mutual TLS on
// 127.0.0.1 ephemeral ports, certificates and data in a temp folder, and clients to talk to them.

export interface ClusterOptions {
  banks: readonly string[];
  /** Extra `gateway` config fields (e.g. prepareTimeoutMs). */
  gateway?: Record<string, unknown>;
  /** Extra `bank` config fields shared by every bank (e.g. inDoubtQueryAfterMs). */
  bank?: Record<string, unknown>;
  /** `consul` config fields; with them the nodes use Consul discovery (default: static discovery). */
  consul?: Record<string, unknown>;
  /**
   * Several gateway instances over one PostgreSQL (config gateway.store = postgres): their ids.
   * Start them with startGatewayInstance; client.gatewayAddress lists them all.
   */
  gatewayInstances?: readonly string[];
  /** The shared database of the gateway instances (config gateway.postgres). */
  postgres?: Record<string, unknown>;
}

interface UserRecord {
  bank: string;
  username: string;
  password: string;
}

/** One attempt per call, a deadline far above what a busy machine needs: what the tests' clients use by default. */
export const CALL_LIMITS = { callTimeoutMs: 10_000, retryMaxAttempts: 1, retryBaseDelayMs: 50, retryMaxDelayMs: 500, ...DEFAULT_CONFIG.grpc };
/**
 * The tests' calls to a node that may just have restarted: grpc-js fails calls fast while the
 * channel is in reconnect back-off (up to grpc.reconnectBackoffMaxMs, 1 s), so UNAVAILABLE is retried
 * for longer than that (equal jitter: at least 50+100+200+400+500+500 ms before giving up). The
 * retry middleware repeats only methods the proto marks IDEMPOTENT or NO_SIDE_EFFECTS.
 */
const RESTART_TOLERANT_LIMITS = { callTimeoutMs: 10_000, retryMaxAttempts: 8, retryBaseDelayMs: 100, retryMaxDelayMs: 1000, ...DEFAULT_CONFIG.grpc };

export class Cluster {
  readonly dir: string;
  readonly certsDir: string;
  readonly configPath: string;
  readonly config: Record<string, any>;
  readonly banks = new Map<string, NodeProcess>();
  gateway?: NodeProcess;
  /** Gateway instances by id (several gateways over one PostgreSQL). */
  readonly instances = new Map<string, NodeProcess>();
  /** Each instance's port, fixed at creation so that banks and clients know every instance. */
  readonly instancePorts = new Map<string, number>();
  readonly users: UserRecord[] = [];
  private readonly clients: NodeClient<any>[] = [];

  private constructor(dir: string, options: ClusterOptions) {
    this.dir = dir;
    this.certsDir = path.join(dir, 'certs');
    this.configPath = path.join(dir, 'config.json');
    this.config = {
      tls: { dir: this.certsDir, gatewayIdentity: 'gateway' },
      logging: { dir: path.join(dir, 'logs'), level: 'info', console: false },
      gateway: {
        host: '127.0.0.1', port: 0, dataDir: path.join(dir, 'gateway'),
        ...(options.postgres ? { store: 'postgres', postgres: options.postgres } : {}),
        ...options.gateway,
      },
      banks: Object.fromEntries(
        options.banks.map((b) => [b, { host: '127.0.0.1', port: 0, dataDir: path.join(dir, b) }]),
      ),
      client: { gatewayAddress: 'localhost:0', dataDir: path.join(dir, 'client') },
      ...(options.bank ? { bank: { ...options.bank } } : {}),
      // Static discovery unless a test opts into Consul.
      discovery: { mode: options.consul ? 'consul' : 'static' },
      ...(options.consul ? { consul: { fallbackToStatic: false, ...options.consul } } : {}),
    };
    this.writeConfig();
  }

  static async create(options: ClusterOptions): Promise<Cluster> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'payments-it-'));
    execFileSync(path.join(ROOT, 'scripts/gen-certs.sh'), [path.join(dir, 'certs'), ...options.banks], { stdio: 'ignore' });
    const cluster = new Cluster(dir, options);
    if (options.gatewayInstances) {
      for (const id of options.gatewayInstances) cluster.instancePorts.set(id, await freePort());
      cluster.config.client.gatewayAddress = [...cluster.instancePorts.values()].map((p) => `localhost:${p}`).join(',');
      cluster.writeConfig();
    }
    return cluster;
  }

  /** Starts (or restarts on its port) one gateway instance of several sharing the database. */
  async startGatewayInstance(id: string, env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
    const port = this.instancePorts.get(id);
    if (port === undefined) throw new Error(`no gateway instance ${id} in this cluster`);
    const node = await startNode('gateway', id, ['--config', this.configPath, '--instance-id', id, '--port', String(port),
      '--data-dir', path.join(this.dir, `gateway-${id}`)], env);
    this.instances.set(id, node);
    return node;
  }

  async stopGatewayInstance(id: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const node = this.instances.get(id);
    if (node) await stopNode(node, signal);
  }

  /** A client of one gateway instance. */
  instanceClient(id: string, identity = 'client') {
    const c = createNodeClient(GatewayServiceDefinition, `localhost:${this.instancePorts.get(id)}`,
      loadTls(this.certsDir, identity), silentLogger(), CALL_LIMITS);
    this.clients.push(c);
    return c.client;
  }

  /** A client of one gateway instance whose reads ride out its restart (RESTART_TOLERANT_LIMITS). */
  instanceReader(id: string, identity = 'client') {
    const c = createNodeClient(GatewayServiceDefinition, `localhost:${this.instancePorts.get(id)}`,
      loadTls(this.certsDir, identity), silentLogger(), RESTART_TOLERANT_LIMITS);
    this.clients.push(c);
    return c.client;
  }

  /** A bank's view of one gateway instance: its coordinator service (GetDecision), as `identity`. */
  instanceCoordinator(id: string, identity: string) {
    const c = createNodeClient(CoordinatorServiceDefinition, `localhost:${this.instancePorts.get(id)}`,
      loadTls(this.certsDir, identity), silentLogger(), CALL_LIMITS);
    this.clients.push(c);
    return c.client;
  }

  /**
   * Gives every node still on port 0 a free port now, so that nodes can start in any order and
   * still find each other (a bank dials the gateway for its in-doubt queries).
   */
  async reservePorts(): Promise<void> {
    for (const b of Object.values<{ port: number }>(this.config.banks)) if (b.port === 0) b.port = await freePort();
    if (this.config.gateway.port === 0) {
      this.config.gateway.port = await freePort();
      this.config.client.gatewayAddress = `localhost:${this.config.gateway.port}`;
    }
    this.writeConfig();
  }

  writeConfig(): void {
    fs.writeFileSync(this.configPath, JSON.stringify(this.config, null, 2));
  }

  async addUser(bank: string, username: string, currency: string, balance: string): Promise<void> {
    const password = `${username}-secret`;
    const r = await runBin('bank', ['add-user', '--config', this.configPath, '--name', bank, '--user', username,
      '--currency', currency, '--balance', balance, '--password-stdin'], { input: `${password}\n` });
    if (r.code !== 0) throw new Error(`add-user ${bank}/${username} failed: ${r.stderr}${r.stdout}`);
    this.users.push({ bank, username, password });
  }

  passwordOf(bank: string, username: string): string {
    const u = this.users.find((x) => x.bank === bank && x.username === username);
    if (!u) throw new Error(`no user ${bank}/${username}`);
    return u.password;
  }

  /** Starts (or restarts on the same port) a bank. `env`: e.g. { PAYMENTS_FAILPOINTS: '...' }. */
  async startBank(name: string, env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
    const node = await startNode('bank', name, ['--config', this.configPath, '--name', name], env);
    this.banks.set(name, node);
    if (this.config.banks[name].port === 0) {
      this.config.banks[name].port = node.port;
      this.writeConfig();
    }
    return node;
  }

  async stopBank(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const node = this.banks.get(name);
    if (node) await stopNode(node, signal);
  }

  /** Starts (or restarts on the same port) the gateway. `env`: e.g. { PAYMENTS_FAILPOINTS: '...' }. */
  async startGateway(env: NodeJS.ProcessEnv = {}): Promise<NodeProcess> {
    const node = await startNode('gateway', 'gateway', ['--config', this.configPath], env);
    this.gateway = node;
    if (this.config.gateway.port === 0) {
      this.config.gateway.port = node.port;
      this.config.client.gatewayAddress = `localhost:${node.port}`;
      this.writeConfig();
    }
    return node;
  }

  async stopGateway(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.gateway) await stopNode(this.gateway, signal);
  }

  async startAll(): Promise<void> {
    for (const name of Object.keys(this.config.banks)) await this.startBank(name);
    await this.startGateway();
  }

  gatewayClient(identity = 'client') {
    const c = createNodeClient(GatewayServiceDefinition, `localhost:${this.config.gateway.port}`,
      loadTls(this.certsDir, identity), silentLogger(), CALL_LIMITS);
    this.clients.push(c);
    return c.client;
  }

  /** A client of the gateway whose reads ride out its restart (RESTART_TOLERANT_LIMITS). */
  gatewayReader(identity = 'client') {
    const c = createNodeClient(GatewayServiceDefinition, `localhost:${this.config.gateway.port}`,
      loadTls(this.certsDir, identity), silentLogger(), RESTART_TOLERANT_LIMITS);
    this.clients.push(c);
    return c.client;
  }

  bankClient(bank: string, identity = 'gateway') {
    const c = createNodeClient(BankServiceDefinition, `localhost:${this.config.banks[bank].port}`,
      loadTls(this.certsDir, identity), silentLogger(), RESTART_TOLERANT_LIMITS);
    this.clients.push(c);
    return c.client;
  }

  /** Logs in through the gateway and returns call options carrying the token. */
  async login(bank: string, username: string): Promise<{ metadata: Metadata; token: string }> {
    const res = await this.gatewayClient().login({ bank, username, password: this.passwordOf(bank, username) });
    return { metadata: bearer(res.accessToken), token: res.accessToken };
  }

  /** Booked and held money summed over every user of every bank, read from the banks themselves. */
  async totals(): Promise<{ balanceMinor: bigint; heldMinor: bigint }> {
    let balanceMinor = 0n;
    let heldMinor = 0n;
    for (const u of this.users) {
      const b = await this.bankClient(u.bank).getBalance({ username: u.username });
      balanceMinor += b.balanceMinor;
      heldMinor += b.balanceMinor - b.availableMinor;
    }
    return { balanceMinor, heldMinor };
  }

  async balanceOf(bank: string, username: string): Promise<{ balanceMinor: bigint; availableMinor: bigint }> {
    return this.bankClient(bank).getBalance({ username });
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    await this.stopGateway();
    for (const id of this.instances.keys()) await this.stopGatewayInstance(id);
    for (const name of this.banks.keys()) await this.stopBank(name);
    if (!process.env.KEEP_TEST_DIRS) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Lowest port the kernel hands out as an outgoing connection's source port (Linux; else the IANA start). */
function ephemeralLow(): number {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}
/** Reserved ports lie in [RESERVED_PORT_MIN, ephemeral low). */
const RESERVED_PORT_MIN = 10_000;
const handedOut = new Set<number>();
/** Ports tried before giving up (the range holds ~20,000). */
const FREE_PORT_ATTEMPTS_MAX = 1000;

/**
 * A port free right now on 127.0.0.1, for a node started a little later. Chosen below the
 * ephemeral range: a port the OS picked (listen on 0) can be taken in between as the source port
 * of any outgoing connection (a busy machine makes thousands), which failed a node's listen with
 * EADDRINUSE. Never the same port twice in one process.
 */
export async function freePort(): Promise<number> {
  const high = ephemeralLow();
  for (let attempt = 0; attempt < FREE_PORT_ATTEMPTS_MAX; attempt++) {
    const port = RESERVED_PORT_MIN + Math.floor(Math.random() * (high - RESERVED_PORT_MIN));
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port on 127.0.0.1 in [${RESERVED_PORT_MIN}, ${high}) after ${FREE_PORT_ATTEMPTS_MAX} tries`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function bearer(token: string): Metadata {
  return new Metadata({ authorization: `Bearer ${token}` });
}

/** Polling pause of `eventually`. */
const EVENTUALLY_POLL_MS = 50;

/**
 * Waits until `check` returns true, polling every EVENTUALLY_POLL_MS, up to timeoutMs. A check that
 * throws counts as "not yet" (a node that just restarted may refuse a call or two); on timeout the
 * error names `what`, the last error thrown and the last detail `check` reported through `note`.
 */
export async function eventually(
  check: (note: (detail: string) => void) => Promise<boolean>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  let lastNote: string | undefined;
  const note = (detail: string) => {
    lastNote = detail;
  };
  for (;;) {
    try {
      if (await check(note)) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > end) {
      const parts = [`${what} not met within ${timeoutMs} ms`];
      if (lastNote !== undefined) parts.push(`last seen: ${lastNote}`);
      if (lastError !== undefined) parts.push(`last error: ${lastError instanceof Error ? lastError.message : inspect(lastError)}`);
      throw new Error(parts.join('; '));
    }
    await new Promise((r) => setTimeout(r, EVENTUALLY_POLL_MS));
  }
}

/**
 * Sends a transfer (each attempt with a new key) until the gateway routes it to a bank it has only
 * just learnt of through discovery: `BANK_UNAVAILABLE` means not yet (that attempt aborted, nothing
 * moved, and its key keeps that outcome); the first other answer, or any other error, is returned or
 * thrown at once.
 */
export async function untilRoutable<T>(send: () => Promise<T>, what: string, timeoutMs = 20_000): Promise<T> {
  let answer: { value: T } | { error: unknown } | undefined;
  await eventually(async (note) => {
    try {
      answer = { value: await send() };
    } catch (error) {
      if (reasonOf(error) === 'BANK_UNAVAILABLE') {
        note('BANK_UNAVAILABLE (the bank not discovered yet)');
        return false;
      }
      answer = { error };
    }
    return true;
  }, timeoutMs, what);
  if (!answer) throw new Error(`${what}: no answer`);
  if ('error' in answer) throw answer.error;
  return answer.value;
}

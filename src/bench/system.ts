import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { LEDGER_FILE, Ledger } from '../bank/ledger.js';
import { loadConfig } from '../config/load.js';
import { findConsul, requireConsul } from '../discovery/consul-agent.js';
import { TRACE_ENV } from '../trace/critical-path.js';
import { startConsul, waitForPassing, type BenchConsul } from './consul.js';
import { packageRoot } from '../process/package-root.js';
import type { TraceTarget } from './critical-path.js';
import { bankName, type BenchOptions } from './options.js';

// The system under test: either launched here (certificates, config, bulk-seeded ledgers, then
// bin/bank and bin/gateway as child processes, exactly as in production: mutual TLS, WAL with
// synchronous=FULL) or a running one described by its config.json. A launched system uses Consul
// discovery by default: a dev agent (src/bench/consul.ts) in the same folder, the nodes register
// with it and the gateway finds the banks through blocking queries, as in production.

export const ROOT = packageRoot(import.meta.url);

/** How long a node may take to print its ready line. */
export const NODE_READY_TIMEOUT_MS = 60_000;
/** How long a node may take to exit after SIGTERM before it is killed. */
export const NODE_STOP_TIMEOUT_MS = 20_000;
/** Bound of one admin command (bulk seeding of millions of rows included). */
export const ADMIN_TIMEOUT_MS = 60 * 60_000;

export interface NodeRef {
  readonly name: string;
  readonly pid: number;
  /** Count its direct children's CPU too (PostgreSQL's backends). */
  readonly tree?: boolean;
}

export interface MoneyTotals {
  readonly accounts: number;
  readonly balanceMinor: bigint;
  readonly heldMinor: bigint;
}

export interface BenchSystem {
  readonly gatewayAddress: string;
  readonly certsDir: string;
  readonly configPath: string;
  readonly banks: readonly string[];
  /** How the gateway finds the banks: 'consul' or 'static' (a targeted system: its config's mode). */
  readonly discovery: 'consul' | 'static';
  /** Processes whose CPU time is reported (the Consul agent included). */
  readonly nodes: readonly NodeRef[];
  /** Nodes with critical-path tracing on (empty when --trace off). */
  readonly traced: readonly TraceTarget[];
  readonly dir: string | undefined;
  /** Sum over every bank, read from the ledgers (as `bin/bank total --json` does). */
  totals(): Promise<MoneyTotals>;
  stop(): Promise<void>;
}

type Log = (line: string) => void;

/** Runs `scripts/<name> args` to completion; resolves with its stdout. */
function runScript(name: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(path.join(ROOT, 'scripts', name), [...args], { timeout: NODE_READY_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`scripts/${name} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Runs `bin/<bin> args` to completion; rejects with its output when it fails. */
export function runBin(bin: 'bank' | 'gateway', args: readonly string[], input = '', timeoutMs = ADMIN_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(path.join(ROOT, 'bin', bin), [...args], { cwd: process.cwd(), timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`bin/${bin} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    child.stdin?.end(input);
  });
}

/**
 * Sum over the banks' ledgers, read with Ledger.totals() (what `bin/bank total` prints) on the
 * files themselves: SQLite WAL lets this reader run beside the live bank without blocking it.
 */
async function bankTotals(dataDirs: readonly string[]): Promise<MoneyTotals> {
  const all = dataDirs.map((dir) => {
    if (!fs.existsSync(path.join(dir, LEDGER_FILE))) throw new Error(`no ledger in ${dir}`);
    const ledger = Ledger.open(dir);
    try {
      const t = ledger.totals();
      return { accounts: t.accounts, balanceMinor: t.balanceMinor, heldMinor: t.heldMinor };
    } finally {
      ledger.close();
    }
  });
  return all.reduce((a, t) => ({
    accounts: a.accounts + t.accounts,
    balanceMinor: a.balanceMinor + t.balanceMinor,
    heldMinor: a.heldMinor + t.heldMinor,
  }), { accounts: 0, balanceMinor: 0n, heldMinor: 0n });
}

interface Started {
  readonly name: string;
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<void>;
}

/**
 * Starts `bin/<bin> args`, output into `logFile`; resolves with the port of its ready line. With
 * `nodeFlags` (Node refuses --cpu-prof in NODE_OPTIONS) it runs what the bash wrapper runs, node
 * and the compiled dist/bin/<bin>.js, with those flags added.
 */
function startNode(bin: 'bank' | 'gateway', name: string, args: readonly string[], nodeFlags: readonly string[], logFile: string, env: NodeJS.ProcessEnv): Promise<Started> {
  const [file, argv] = nodeFlags.length === 0
    ? [path.join(ROOT, 'bin', bin), [...args]]
    : [process.execPath, [...nodeFlags, path.join(ROOT, 'dist', 'bin', `${bin}.js`), ...args]];
  const child = spawn(file, argv, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = fs.createWriteStream(logFile);
  child.stderr.pipe(out);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not become ready in ${NODE_READY_TIMEOUT_MS} ms (see ${logFile})`));
    }, NODE_READY_TIMEOUT_MS);
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready (see ${logFile})`));
    };
    child.on('exit', onExit);
    child.stdout.on('data', (chunk: Buffer) => {
      out.write(chunk);
      if (seen === '\u0000') return;
      seen += chunk.toString();
      const line = seen.split('\n').find((l) => l.startsWith('{"event":"listening"'));
      if (!line) return;
      seen = '\u0000';
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve({ name, child, port: (JSON.parse(line) as { port: number }).port, exited });
    });
  });
}

async function stopNode(node: Started): Promise<void> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return;
  node.child.kill('SIGTERM');
  const timer = setTimeout(() => node.child.kill('SIGKILL'), NODE_STOP_TIMEOUT_MS);
  await node.exited;
  clearTimeout(timer);
}

/** What a data folder was seeded with; a folder is reused only for the same spec. */
interface SeedSpec {
  readonly banks: readonly string[];
  readonly accounts: number;
  readonly prefix: string;
  readonly currency: string;
  readonly balance: string;
  readonly historyRows: number;
}

function seedSpecOf(o: BenchOptions, banks: readonly string[]): SeedSpec {
  return { banks, accounts: o.accounts, prefix: o.prefix, currency: o.currency, balance: o.balance, historyRows: o.historyRows };
}

async function seed(o: BenchOptions, configPath: string, dir: string, banks: readonly string[], log: Log): Promise<void> {
  const marker = path.join(dir, 'bench-seed.json');
  const spec = seedSpecOf(o, banks);
  if (fs.existsSync(marker)) {
    const old = fs.readFileSync(marker, 'utf8');
    if (old === JSON.stringify(spec)) {
      log(`reusing the seeded ledgers in ${dir}`);
      return;
    }
    throw new Error(`${dir} was seeded with ${old}; use another --dir for ${JSON.stringify(spec)}`);
  }
  let started = Date.now();
  log(`seeding ${o.accounts} accounts at each of ${banks.join(', ')}`);
  // Banks are separate files: seed them side by side.
  await Promise.all(banks.map((b) => runBin('bank', ['bulk-seed', '--config', configPath, '--name', b, '--count', String(o.accounts),
    '--prefix', o.prefix, '--currency', o.currency, '--balance', o.balance, '--password-stdin'], `${o.password}\n`)));
  log(`seeded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (o.historyRows > 0) {
    started = Date.now();
    const perBank = Math.ceil(o.historyRows / banks.length);
    log(`adding ${perBank} history rows at each bank`);
    await Promise.all(banks.map((b, i) => runBin('bank', ['fill-history', '--config', configPath, '--name', b, '--rows', String(perBank),
      '--count', String(o.accounts), '--prefix', o.prefix, '--counterparty', banks[(i + 1) % banks.length]!])));
    log(`history added in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  fs.writeFileSync(marker, JSON.stringify(spec));
}

/** Creates (or reuses) the folder, seeds the ledgers, starts every bank and then the gateway. */
export async function launchSystem(o: BenchOptions, log: Log): Promise<BenchSystem> {
  const dir = o.dir ? path.resolve(o.dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'payments-bench-'));
  fs.mkdirSync(dir, { recursive: true });
  const banks = Array.from({ length: o.banks }, (_, i) => bankName(i));
  const certsDir = path.join(dir, 'certs');
  const configPath = path.join(dir, 'config.json');
  const logsDir = path.join(dir, 'logs');
  fs.mkdirSync(logsDir, { recursive: true });
  await promisify(execFile)(path.join(ROOT, 'scripts/gen-certs.sh'), [certsDir, ...banks]);
  let consul: BenchConsul | undefined;
  if (o.discovery === 'consul') {
    try {
      if (!findConsul(ROOT)) log('no consul binary: running scripts/install-consul.sh');
      const binary = requireConsul(ROOT);
      consul = await startConsul(binary, dir, certsDir, path.join(logsDir, 'consul.out'));
      log(`consul dev agent ${binary} on http 127.0.0.1:${consul.httpPort} (pid ${consul.pid})`);
    } catch (err) {
      log(`NOTICE: Consul could not be installed or started (${(err as Error).message.split('\n')[0]}); running with static discovery`);
    }
  }
  const config = {
    tls: { dir: certsDir, gatewayIdentity: 'gateway' },
    // Production logging (info, JSON file per node); the console copy is off because nobody reads it.
    logging: { dir: logsDir, level: 'info', console: false },
    discovery: { mode: consul ? 'consul' : 'static' },
    // Without the static fallback: a node that cannot reach the bench's agent fails instead of
    // quietly measuring the other mode.
    ...(consul ? { consul: { host: '127.0.0.1', httpPort: consul.httpPort, fallbackToStatic: false } } : {}),
    gateway: { host: '127.0.0.1', port: 0, dataDir: path.join(dir, 'gateway') } as Record<string, unknown>,
    banks: Object.fromEntries(banks.map((b) => [b, { host: '127.0.0.1', port: 0, dataDir: path.join(dir, b) }])),
    client: { gatewayAddress: 'localhost:0', dataDir: path.join(dir, 'client') },
  };
  const write = () => fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
  write();

  const sets = o.sets.flatMap((s) => ['--set', s]);
  const flagsFor = (name: string): string[] => {
    if (!o.cpuProfDir) return [];
    // One folder per node: a profile's name (CPU.<date>.<pid>.<thread>.cpuprofile) does not say
    // which node wrote it.
    const dir = path.resolve(o.cpuProfDir, name);
    fs.mkdirSync(dir, { recursive: true });
    return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  };
  const env = { ...process.env, [TRACE_ENV]: o.trace ? '1' : '0' };
  const started: Started[] = [];
  let postgres: { dir: string; pid: number } | undefined;
  // Nodes first (they deregister), then the agent and the database.
  const stop = async () => {
    for (const n of started.splice(0).reverse()) await stopNode(n);
    await consul?.stop();
    if (postgres) await runScript('pg-dev.sh', ['stop', postgres.dir]);
  };
  try {
    if (o.store === 'postgres') {
      const pgDir = path.join(dir, 'postgres');
      const port = Number((await runScript('pg-dev.sh', ['start', pgDir])).trim().split('\n').pop());
      postgres = { dir: pgDir, pid: Number(fs.readFileSync(path.join(pgDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]) };
      config.gateway = { ...config.gateway, store: 'postgres', postgres: { host: '127.0.0.1', port } };
      write();
      log(`postgres on 127.0.0.1:${port} (pid ${postgres.pid}, data in ${pgDir})`);
    }
    await seed(o, configPath, dir, banks, log);
    for (const b of banks) {
      const node = await startNode('bank', b, ['--config', configPath, '--name', b, ...sets], flagsFor(b), path.join(logsDir, `${b}.out`), env);
      started.push(node);
      config.banks[b]!.port = node.port;
      write();
    }
    const gateways: Started[] = [];
    for (let i = 1; i <= o.gateways; i++) {
      // One instance: the plain gateway as before; several: g1, g2, ... over the shared database.
      const name = o.gateways === 1 ? 'gateway' : `gateway-g${i}`;
      const instance = o.gateways === 1 ? [] : ['--instance-id', `g${i}`, '--data-dir', path.join(dir, `gateway-g${i}`)];
      const gw = await startNode('gateway', name, ['--config', configPath, ...instance, ...sets], flagsFor(name), path.join(logsDir, `${name}.out`), env);
      started.push(gw);
      gateways.push(gw);
    }
    config.client.gatewayAddress = gateways.map((g) => `localhost:${g.port}`).join(',');
    write();
    if (consul) {
      // The gateway is ready after its first Consul answer; the banks turn passing at their first check.
      const settings = loadConfig({ path: configPath, sets: [...o.sets] }).consul;
      const ms = await waitForPassing(consul, settings.bankService, banks.length);
      await waitForPassing(consul, settings.gatewayService, gateways.length);
      log(`every bank passing in Consul ${ms} ms after the gateway was ready`);
    }
    log(`system up in ${dir} (${consul ? 'Consul' : 'static'} discovery, ${o.store} log): gateways ${gateways.map((g) => `:${g.port}`).join(' ')}, `
      + `${banks.map((b) => `${b} :${config.banks[b]!.port}`).join(', ')}`);
    return {
      gatewayAddress: config.client.gatewayAddress,
      certsDir,
      configPath,
      banks,
      discovery: consul ? 'consul' : 'static',
      nodes: [
        ...started.map((n) => ({ name: n.name, pid: n.child.pid! })),
        ...(consul ? [{ name: 'consul', pid: consul.pid }] : []),
        ...(postgres ? [{ name: 'postgres', pid: postgres.pid, tree: true }] : []),
      ],
      traced: o.trace ? started.map((n) => ({
        name: n.name,
        pid: n.child.pid!,
        dataDir: n.name === 'gateway' ? (config.gateway.dataDir as string) : n.name.startsWith('gateway-') ? path.join(dir, n.name) : config.banks[n.name]!.dataDir,
      })) : [],
      dir,
      totals: () => bankTotals(banks.map((b) => config.banks[b]!.dataDir)),
      stop: async () => {
        await stop();
        if (!o.dir && !o.keep) fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A system someone else runs, described by its config.json (accounts must already exist). */
export function targetSystem(o: BenchOptions): BenchSystem {
  const configPath = path.resolve(o.targetConfig!);
  const config = loadConfig({ path: configPath, sets: [...o.sets] });
  const banks = Object.keys(config.banks);
  if (banks.length === 0) throw new Error(`${configPath} names no banks`);
  return {
    gatewayAddress: config.client.gatewayAddress,
    // Relative paths in a config are relative to the working folder, as for the nodes themselves.
    certsDir: path.resolve(config.tls.dir),
    configPath,
    banks,
    discovery: config.discovery.mode,
    nodes: Object.entries(o.pids).map(([name, pid]) => ({ name, pid })),
    // Only the nodes named by --pid can be signalled; their data folders come from the config.
    traced: o.trace ? Object.entries(o.pids).flatMap(([name, pid]) => {
      const dataDir = name === 'gateway' ? config.gateway.dataDir : config.banks[name]?.dataDir;
      return dataDir === undefined ? [] : [{ name, pid, dataDir: path.resolve(dataDir) }];
    }) : [],
    dir: undefined,
    totals: () => bankTotals(banks.map((b) => path.resolve(config.banks[b]!.dataDir))),
    stop: async () => undefined,
  };
}

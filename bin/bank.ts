#!/usr/bin/env node
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { addUser, bulkSeed, fillHistory, formatInDoubt, formatTotals, seed } from '../src/bank/admin.js';
import { Ledger } from '../src/bank/ledger.js';
import { startBankServer } from '../src/bank/server.js';
import { createDiscovery, loadNodeTls, type DiscoverySetup } from '../src/discovery/create.js';
import { bankServiceSpec } from '../src/discovery/registration.js';
import { loadConfigOrExit } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { toJson } from '../src/core/json.js';
import { parseAmount } from '../src/core/money.js';
import { closeLogger, createLogger } from '../src/logging/logger.js';
import { BankMetrics } from '../src/metrics/bank.js';
import { announceListening, onShutdownSignal } from '../src/process/lifecycle.js';

// Wiring only: `bin/bank --name BankA` runs the bank server; the subcommands administer its ledger.

const USAGE = `usage:
  bin/bank --name BANK [--config FILE] [--set key=value]...          run the bank server
  bin/bank add-user --name BANK --user NAME --currency CUR --balance AMOUNT
                    (--password P | --password-stdin)                 create an account
  bin/bank seed --name BANK                                           add the demo users if missing
  bin/bank in-doubt --name BANK [--limit N] [--json]                  list prepared transactions
  bin/bank total --name BANK [--json]                                 sum of balances and holds
  bin/bank bulk-seed --name BANK --count M [--prefix u] --currency CUR --balance AMOUNT
                    (--password P | --password-stdin)                 M benchmark accounts, one shared hash
  bin/bank fill-history --name BANK --rows R --count M [--prefix u] [--counterparty BANK]
                                                                      R synthetic history rows (benchmarks)`;

/** Default bound of the in-doubt listing. */
const IN_DOUBT_LIST_MAX = 1000;

function usageExit(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        config: { type: 'string' },
        set: { type: 'string', multiple: true },
        user: { type: 'string' },
        currency: { type: 'string' },
        balance: { type: 'string' },
        password: { type: 'string' },
        'password-stdin': { type: 'boolean' },
        limit: { type: 'string' },
        count: { type: 'string' },
        prefix: { type: 'string' },
        rows: { type: 'string' },
        counterparty: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return usageExit((err as Error).message);
  }
}

const { values: args, positionals } = parse();
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const COMMANDS = ['serve', 'add-user', 'seed', 'in-doubt', 'total', 'bulk-seed', 'fill-history'];
const command = positionals[0] ?? 'serve';
if (!COMMANDS.includes(command)) usageExit(`unknown command "${command}"`);
if (positionals.length > 1) usageExit(`unexpected arguments: ${positionals.slice(1).join(' ')}`);
const name = args.name ?? usageExit('--name BANK is required');
const config = loadConfigOrExit({ path: args.config, sets: args.set ?? [] });
const bankNode = config.banks[name];
if (!bankNode) {
  const known = Object.keys(config.banks).join(', ') || 'none';
  process.stderr.write(`error: bank "${name}" is not in the configuration (known banks: ${known})\n`);
  process.exit(2);
}

async function serve(cfg: Config): Promise<void> {
  const logger = createLogger({ node: name, ...cfg.logging });
  let setup: DiscoverySetup | undefined;
  const metrics = new BankMetrics(name);
  try {
    setup = await createDiscovery(cfg, logger, 'bank', { onWatchState: metrics.consulWatch });
    const discovery = setup;
    const tls = await loadNodeTls(cfg, setup, name, logger);
    const bank = await startBankServer(cfg, name, logger, {
      discovery: setup.discovery,
      tls,
      registrar: setup.registrar(bankServiceSpec(cfg.consul, name, bankNode!.host)),
      metrics,
    });
    announceListening(name, bank.port, { discovery: setup.mode, ...(bank.metricsPort === undefined ? {} : { metricsPort: bank.metricsPort }) });
    onShutdownSignal(async (signal) => {
      logger.info('shutting down', { signal });
      await bank.stop();
      await discovery.close();
      await closeLogger(logger);
    }, cfg.bank.shutdownGraceMs);
  } catch (err) {
    logger.error('bank failed to start', { error: err instanceof Error ? err.message : String(err) });
    await setup?.close();
    await closeLogger(logger);
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}

async function readPassword(): Promise<string> {
  if (args['password-stdin']) {
    if (args.password !== undefined) usageExit('use either --password or --password-stdin');
    return fs.readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  }
  return args.password ?? usageExit('--password P or --password-stdin is required');
}

async function admin(dataDir: string): Promise<number> {
  const ledger = Ledger.open(dataDir);
  try {
    switch (command) {
      case 'add-user': {
        const username = args.user ?? usageExit('--user NAME is required');
        const currency = args.currency ?? usageExit('--currency CUR is required');
        const amount = parseAmount(args.balance ?? usageExit('--balance AMOUNT is required'), currency);
        if (!amount.ok) usageExit(`--balance: ${amount.message}`);
        const r = await addUser(ledger, { username, currency, balanceMinor: amount.value, password: await readPassword() });
        if (!r.ok) usageExit(r.message);
        if (r.value === 'exists') {
          process.stderr.write(`error: user "${username}" already exists at ${name}\n`);
          return 1;
        }
        process.stdout.write(`created ${username} at ${name} with ${args.balance} ${currency}\n`);
        return 0;
      }
      case 'seed': {
        const done = await seed(ledger, name);
        if (done.length === 0) process.stdout.write(`no demo users defined for ${name}\n`);
        for (const d of done) {
          process.stdout.write(`${d.username}: ${d.outcome === 'created' ? 'created' : 'already exists, unchanged'}\n`);
        }
        return 0;
      }
      case 'in-doubt': {
        const limit = args.limit === undefined ? IN_DOUBT_LIST_MAX : Number(args.limit);
        if (!Number.isInteger(limit) || limit <= 0) usageExit('--limit must be a positive integer');
        const list = ledger.inDoubt(limit);
        process.stdout.write(`${args.json ? toJson({ bank: name, transactions: list }) : formatInDoubt(list)}\n`);
        return 0;
      }
      case 'total': {
        const totals = ledger.totals();
        process.stdout.write(`${args.json ? toJson({ bank: name, ...totals }) : formatTotals(name, totals)}\n`);
        return 0;
      }
      default:
        throw new Error(`command "${command}" has no handler`);
    }
  } finally {
    ledger.close();
  }
}

/** bulk-seed and fill-history write with their own connection (src/bank/bulk-seed.ts). */
async function bulk(dataDir: string): Promise<number> {
  const count = Number(args.count ?? usageExit('--count M is required'));
  if (!Number.isInteger(count) || count <= 0) usageExit('--count must be a positive integer');
  const prefix = args.prefix ?? 'u';
  const progress = (what: string, total: number) => (done: number) => {
    process.stderr.write(`${name}: ${done}/${total} ${what}\r`);
  };
  if (command === 'bulk-seed') {
    const currency = args.currency ?? usageExit('--currency CUR is required');
    const amount = parseAmount(args.balance ?? usageExit('--balance AMOUNT is required'), currency);
    if (!amount.ok) usageExit(`--balance: ${amount.message}`);
    const r = await bulkSeed(dataDir, { prefix, count, currency, balanceMinor: amount.value, password: await readPassword() },
      progress('accounts', count));
    if (!r.ok) usageExit(r.message);
    process.stdout.write(`\n${name}: ${r.value.inserted} accounts created (${count - r.value.inserted} existed) in ${r.value.elapsedMs} ms\n`);
    return 0;
  }
  const rows = Number(args.rows ?? usageExit('--rows R is required'));
  const r = fillHistory(dataDir, name, { rows, prefix, accounts: count, counterpartyBank: args.counterparty ?? 'Filler' },
    progress('history rows', rows));
  if (!r.ok) usageExit(r.message);
  process.stdout.write(`\n${name}: ${r.value.inserted} history rows added in ${r.value.elapsedMs} ms\n`);
  return 0;
}

if (command === 'bulk-seed' || command === 'fill-history') {
  process.exitCode = await bulk(bankNode.dataDir);
} else if (command === 'serve') {
  await serve(config);
} else {
  process.exitCode = await admin(bankNode.dataDir);
}

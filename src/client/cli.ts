import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Config } from '../config/schema.js';
import type { CommandFlags } from './commands/args.js';
import type { CliContext, CliIo } from './context.js';
import { EXIT, exitCodeOf } from './exit-codes.js';

// bin/client: parses the command line, loads config, runs one subcommand (or the interactive menu),
// prints the outcome and returns the exit code. All I/O goes through `io`, so tests can run it too.

export const HELP = `usage: bin/client [global flags] COMMAND [arguments]
       bin/client [global flags] [BANK USER PASSWORD]     interactive menu (same as: interactive ...)

commands:
  login BANK USER [--password P | --password-stdin]
        Log in and keep the session for later commands. Without a password flag the
        password is asked for (not echoed) when stdin is a terminal.
  balance
        Show the logged-in account's balance.
  transfer TO_BANK TO_USER AMOUNT [--key UUID] [--currency CUR]
        Pay AMOUNT, a decimal such as 12.50 in the account's currency (or CUR), to TO_USER
        at TO_BANK. Prints the transfer's idempotency key (a new UUID unless --key is
        given). Sending again with the same --key never pays twice. The payment is first
        written to the offline queue (with its key), older queued payments of the account
        go first; if the gateway cannot be reached, or its answer is lost, it stays queued
        and the command exits 5: it is sent later, with the same key, by
        \`bin/client queue run\` or the interactive client.
  status KEY
        Show the transfer created with idempotency key KEY.
  history [--page-size N] [--page-token T] [--all]
        List the account's transactions, newest first, one page (or --all pages).
  logout
        Revoke the session at the gateway and delete it here.
  queue list                                  the offline queue: waiting and finished payments
  queue show ID                               one entry (ID: its number or its key)
  queue cancel ID                             cancel an entry that was never sent
  queue run [--until-empty] [--timeout-ms N]
        Send the offline queue in the foreground, retrying every client.outboxRetryIntervalMs
        (200 ms), oldest first per account; until stopped (Ctrl-C), until nothing is left to
        send (--until-empty), or for at most N ms. An entry sent before whose answer was lost
        is "in doubt": its outcome is asked for with GetTransfer, and it cannot be cancelled.
        A payment never sent within client.outboxMaxAgeMs (24 h) expires. Payments whose
        session expired wait ("needs login") and are sent after \`bin/client login\`.
        Exit 0: nothing left to send; 3: payments need a login; 5: payments still queued.
  interactive [BANK USER PASSWORD]
        Log in (asking for what is missing), then a menu:
        1) balance 2) transfer 3) history 4) logout and quit 5) offline queue. Reads lines
        from stdin, so it can be driven by a pipe. Sends the offline queue in the background
        while it runs and prints each outcome as it arrives.

offline queue:
  Stored in client.dataDir (outbox.sqlite, mode 0600), durable before anything is sent. It is
  sent by \`queue run\`, the interactive client, \`transfer\` (older entries first) and \`login\`
  (which resumes the account's queue); other commands only mention waiting payments on stderr.
  At most client.outboxMaxEntries (1000) payments wait at once: beyond that a new transfer is
  refused with OUTBOX_FULL (exit 1) and nothing is sent.

global flags:
  --json              Machine-readable output on stdout: one JSON document; amounts as strings of
                      minor units (amountMinor) plus a formatted decimal (amount).
  --gateway ADDRESS   Gateway to call, host:port (default: config client.gatewayAddress).
  --config FILE       Config file (default: $PAYMENTS_CONFIG or ./config.json).
  --set KEY=VALUE     Override a config value, e.g. --set client.callTimeoutMs=2000 (repeatable).
                      Environment variables PAYMENTS__SECTION__KEY=VALUE work too.
  -h, --help          Show this help.

The session is stored in client.dataDir (default ~/.payments-client, folder mode 0700, file 0600);
its token is encrypted with AES-256-GCM under a key derived from the client TLS key.

errors:
  One line on stderr: "error: MESSAGE (REASON)". With --json: {"error":{"code","reason","message"}}
  on stdout instead (plus "idempotencyKey" for transfers).

exit codes:
  0   ok
  1   request refused by the gateway (e.g. INSUFFICIENT_FUNDS, ACCOUNT_NOT_FOUND)
  2   usage error or invalid input (bad amount, name, key, flag or configuration)
  3   authentication needed or failed (not logged in, session expired, wrong password)
  4   gateway unreachable or no answer in time (for login, balance, history, status, logout)
  5   queued: the payment is kept in the offline queue and will be sent when the gateway is
      reachable (run \`bin/client queue run\` or keep the interactive client open)
  70  internal error (a bug; please report it)
`;

const OPTIONS = {
  json: { type: 'boolean' },
  config: { type: 'string' },
  set: { type: 'string', multiple: true },
  gateway: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  password: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  key: { type: 'string' },
  currency: { type: 'string' },
  'page-size': { type: 'string' },
  'page-token': { type: 'string' },
  all: { type: 'boolean' },
  'until-empty': { type: 'boolean' },
  'timeout-ms': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const GLOBAL_OPTIONS: readonly string[] = ['json', 'config', 'set', 'gateway', 'help'];

type Command = (ctx: CliContext, args: readonly string[], flags: CommandFlags) => Promise<number>;

// Each command's module (and the libraries it needs: zod, gRPC, SQLite, winston) is imported only
// when that command runs: start-up is most of a CLI call's time, and --help needs none of them.
const COMMANDS: Readonly<Record<string, { readonly options: readonly string[]; readonly run: Command }>> = {
  login: {
    options: ['password', 'password-stdin'],
    run: async (ctx, args, flags) => (await import('./commands/login.js')).loginCommand(ctx, args, flags),
  },
  balance: { options: [], run: async (ctx, args) => (await import('./commands/balance.js')).balanceCommand(ctx, args) },
  transfer: {
    options: ['key', 'currency'],
    run: async (ctx, args, flags) => (await import('./commands/transfer.js')).transferCommand(ctx, args, flags),
  },
  status: { options: [], run: async (ctx, args) => (await import('./commands/status.js')).statusCommand(ctx, args) },
  history: {
    options: ['page-size', 'page-token', 'all'],
    run: async (ctx, args, flags) => (await import('./commands/history.js')).historyCommand(ctx, args, flags),
  },
  logout: { options: [], run: async (ctx, args) => (await import('./commands/logout.js')).logoutCommand(ctx, args) },
  queue: {
    options: ['until-empty', 'timeout-ms'],
    run: async (ctx, args, flags) => (await import('./commands/queue.js')).queueCommand(ctx, args, flags),
  },
  interactive: { options: [], run: async (ctx, args) => (await import('./interactive.js')).runInteractive(ctx, args) },
};

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  // Known before anything can fail, so even a usage error comes out as JSON when asked.
  const json = argv.includes('--json');
  const parsed = parseCommandLine(argv);
  if (parsed.ok && (parsed.values.help || parsed.positionals[0] === 'help')) {
    io.stdout.write(HELP);
    return EXIT.OK;
  }
  // The failure types import nice-grpc: loaded only past --help.
  const { ClientFailure, usageFailure } = await import('./failure.js');
  let ctx: CliContext | undefined;
  try {
    if (!parsed.ok) throw usageFailure(`${parsed.message}; see bin/client --help`);
    const { values, positionals, tokens } = parsed;
    const name = positionals[0] !== undefined && Object.hasOwn(COMMANDS, positionals[0]) ? positionals[0] : 'interactive';
    const command = COMMANDS[name]!;
    const args = name === 'interactive' && positionals[0] !== 'interactive' ? positionals : positionals.slice(1);
    for (const option of tokens) {
      if (!GLOBAL_OPTIONS.includes(option) && !command.options.includes(option)) {
        throw usageFailure(`--${option} is not an option of ${name}; see bin/client --help`);
      }
    }
    if (name === 'interactive' && json) throw usageFailure('--json is for subcommands, not the interactive menu');
    const config = await loadClientConfig(values.config, values.set, io.env);
    // No --gateway: with discovery.mode consul, a passing gateway from Consul (else client.gatewayAddress).
    const { resolveGatewayAddress } = await import('../discovery/create.js');
    const address = values.gateway ?? await resolveGatewayAddress(config, { notice: (line) => io.stderr.write(`${line}\n`) });
    const { CliContext } = await import('./context.js');
    ctx = new CliContext(io, config, json, address);
    const code = await command.run(ctx, args, values);
    if (QUEUE_NOTICE_COMMANDS.has(name)) noteWaitingPayments(ctx);
    return code;
  } catch (err) {
    if (!(err instanceof ClientFailure)) throw err;
    const { writeError } = await import('./context.js');
    writeError(io, json, err);
    return exitCodeOf(err);
  } finally {
    await ctx?.close();
  }
}

/** Commands that do not send the offline queue, but say on stderr when payments are waiting. */
const QUEUE_NOTICE_COMMANDS: ReadonlySet<string> = new Set(['balance', 'history', 'status', 'logout']);

function noteWaitingPayments(ctx: CliContext): void {
  const waiting = ctx.existingOutbox()?.waitingCount() ?? 0;
  if (waiting > 0 && !ctx.json) {
    ctx.io.stderr.write(`note: ${waiting} payments are waiting in the offline queue (bin/client queue list); `
      + 'they are sent by `bin/client queue run` or the interactive client\n');
  }
}

function parseCommandLine(argv: readonly string[]) {
  try {
    const parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true, tokens: true });
    const tokens = new Set(parsed.tokens.flatMap((t) => (t.kind === 'option' ? [t.name] : [])));
    return { ok: true as const, values: parsed.values, positionals: parsed.positionals, tokens };
  } catch (err) {
    return { ok: false as const, message: (err as Error).message.split('\n')[0] ?? '' };
  }
}

async function loadClientConfig(path: string | undefined, sets: string[] | undefined, env: NodeJS.ProcessEnv): Promise<Config> {
  const { ConfigError, loadConfig } = await import('../config/load.js');
  const { configFailure } = await import('./failure.js');
  try {
    return loadConfig({ path, sets, env });
  } catch (err) {
    if (err instanceof ConfigError) throw configFailure(`config: ${err.message.replace(/\n\s*/g, '; ')}`);
    throw err;
  }
}

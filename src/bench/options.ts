import { parseArgs } from 'node:util';
import { fail, ok, type Result } from '../core/errors.js';
import { isName } from '../core/ids.js';
import { isCurrency } from '../core/money.js';

// `bin/bench` options: pure parsing and validation, plus the seeded random choices the load
// generator makes (amounts, recipients). No I/O here, so it is unit-tested directly.

export type AmountDist =
  | { readonly kind: 'fixed'; readonly minor: bigint }
  | { readonly kind: 'uniform'; readonly minMinor: bigint; readonly maxMinor: bigint };

export interface BenchOptions {
  /** Concurrent client sessions (each its own logged-in user, one request in flight). */
  readonly concurrency: number;
  /** C values of a sweep; undefined = one run at `concurrency`. */
  readonly sweep: readonly number[] | undefined;
  readonly durationS: number;
  readonly warmupS: number;
  /** Banks of a launched system (BankA, BankB, ...); a targeted system brings its own. */
  readonly banks: number;
  /** Funded accounts per bank: `${prefix}0` .. `${prefix}${accounts-1}`. */
  readonly accounts: number;
  readonly prefix: string;
  readonly password: string;
  readonly currency: string;
  /** Opening balance of each seeded account, decimal ("1000000.00"). */
  readonly balance: string;
  /** Synthetic history rows added before the run, split evenly over the banks (launched system only). */
  readonly historyRows: number;
  /** Share of transfers whose recipient is at the payer's own bank, 0..1. */
  readonly sameBankShare: number;
  readonly amount: AmountDist;
  readonly seed: number;
  /** Load-generator processes; sessions are spread round-robin over them. */
  readonly workers: number;
  /** gRPC channels (TCP connections) per worker; sessions are spread round-robin over them. */
  readonly channels: number;
  /** Deadline of one CreateTransfer call, ms. */
  readonly callTimeoutMs: number;
  /** Launch into this folder (kept afterwards); default: a new temp folder, removed afterwards. */
  readonly dir: string | undefined;
  readonly keep: boolean;
  /** Target a running system described by this config.json instead of launching one. */
  readonly targetConfig: string | undefined;
  /** Process ids of a targeted system's nodes, for CPU accounting (name=pid). */
  readonly pids: Readonly<Record<string, number>>;
  /** Run gateway and banks with `node --cpu-prof` writing .cpuprofile files into this folder. */
  readonly cpuProfDir: string | undefined;
  /**
   * Discovery of a launched system: 'consul' (default) runs a Consul dev agent beside the nodes, which
   * register with it and the gateway finds the banks through it; 'static' puts the addresses in the config.
   */
  readonly discovery: 'consul' | 'static';
  /** The launched gateways' log: 'sqlite' (one gateway, a file) or 'postgres' (a server started in the bench folder). */
  readonly store: 'sqlite' | 'postgres';
  /** Gateway instances launched (more than one needs the postgres store); sessions are spread over them. */
  readonly gateways: number;
  /** SIGKILL the first gateway instance this many seconds into the measured window (failover under load). */
  readonly killGatewayAfterS: number | undefined;
  /**
   * Critical-path tracing: launched nodes run with PAYMENTS_TRACE_CRITICAL_PATH=1 and are asked for
   * their phase histograms around each measured window (default: on for a launched system, off
   * with --config, whose nodes must have been started with that variable).
   */
  readonly trace: boolean;
  /** `--set key=value` passed on to every launched node. */
  readonly sets: readonly string[];
  readonly json: boolean;
  /** Write the results table into this markdown file (between markers named by `label`). */
  readonly docs: string | undefined;
  readonly label: string;
  readonly quiet: boolean;
}

export const BENCH_USAGE = `usage: bin/bench [options]                 launch gateway + banks, drive transfers, report
       bin/bench profile-summary FILE.cpuprofile... [--top N] [--json]   top self-time functions

load:
  -c, --concurrency C      concurrent client sessions (default 32)
  --sweep 1,8,32,128       run each C in turn against the same system
  -d, --duration S         measured seconds (default 10)
  -w, --warmup S           warm-up seconds, not measured (default 3)
  --same-bank-share F      share of same-bank transfers, 0..1 (default 0)
  --amount DIST            fixed:N | uniform:MIN-MAX, minor units (default uniform:1-100)
  --seed N                 seed of every random choice (default 1)
  --workers K              load-generator processes (default 1)
  --channels K             gRPC connections per worker (default 1)
  --call-timeout-ms MS     deadline of one CreateTransfer (default 10000)
system (launched unless --config is given):
  --banks N                banks BankA, BankB, ... (default 2)
  --accounts M             funded accounts per bank (default 1000)
  --history R              synthetic history rows before the run, split over the banks (default 0)
  --balance AMOUNT         opening balance per account (default 1000000.00)
  --currency CUR           (default EUR)
  --dir DIR                data, certs, logs and config here, kept (reused if already seeded)
  --keep                   keep the temp folder
  --cpu-prof DIR           run gateway and banks under node --cpu-prof, profiles into DIR
  --discovery MODE         consul: a Consul dev agent on free ports, nodes register, the gateway
                           discovers the banks through it (default; static with a NOTICE if Consul
                           cannot be installed or started) | static: addresses in the config
  --store sqlite|postgres  the gateway's log (default sqlite); postgres starts a PostgreSQL server in
                           the bench folder (scripts/pg-dev.sh) and reports its CPU
  --gateways N             gateway instances sharing that database (default 1; > 1 needs postgres);
                           the sessions are spread over them
  --kill-gateway-after S   SIGKILL gateway g1 S seconds into the measured window (needs --gateways >= 2,
                           one C): reports committed/s per second and when g1's transfers were finished
  --trace on|off           critical-path tracing (default on; with --config off: turn it on only
                           if the nodes run with PAYMENTS_TRACE_CRITICAL_PATH=1, else SIGUSR2 stops them)
  --set key=value          config override for every node (repeatable)
  --config FILE            target the running system of this config.json (accounts must exist)
  --pid NAME=PID           a targeted node's process id, for CPU accounting (repeatable)
  --prefix P --password P  account names P0..P{M-1} and their password (default u, bench-pass)
output:
  --json                   JSON report on stdout instead of the table
  --docs FILE              write the table into FILE (markdown) between markers of --label
  --label NAME             (default "latest")
  -q, --quiet              no progress line`;

const DEFAULTS = {
  concurrency: 32,
  durationS: 10,
  warmupS: 3,
  banks: 2,
  accounts: 1000,
  prefix: 'u',
  password: 'bench-pass',
  currency: 'EUR',
  balance: '1000000.00',
  historyRows: 0,
  sameBankShare: 0,
  amount: 'uniform:1-100',
  seed: 1,
  workers: 1,
  channels: 1,
  callTimeoutMs: 10_000,
  label: 'latest',
} as const;

/** Bounds, so that a typo cannot start a million processes. */
export const BENCH_LIMITS = {
  concurrencyMax: 10_000,
  durationSMax: 3600,
  banksMax: 26,
  accountsMax: 10_000_000,
  historyRowsMax: 100_000_000,
  workersMax: 64,
  channelsMax: 256,
  gatewaysMax: 8,
} as const;

export function parseAmountDist(text: string): Result<AmountDist> {
  const fixed = /^fixed:([1-9][0-9]{0,17})$/.exec(text);
  if (fixed) return ok({ kind: 'fixed', minor: BigInt(fixed[1]!) });
  const uniform = /^uniform:([1-9][0-9]{0,17})-([1-9][0-9]{0,17})$/.exec(text);
  if (uniform) {
    const minMinor = BigInt(uniform[1]!);
    const maxMinor = BigInt(uniform[2]!);
    if (minMinor > maxMinor) return fail('INVALID_ARGUMENT', `--amount ${text}: MIN must not exceed MAX`);
    return ok({ kind: 'uniform', minMinor, maxMinor });
  }
  return fail('INVALID_ARGUMENT', `--amount "${text}": use fixed:N or uniform:MIN-MAX (positive minor units)`);
}

export function formatAmountDist(d: AmountDist): string {
  return d.kind === 'fixed' ? `fixed:${d.minor}` : `uniform:${d.minMinor}-${d.maxMinor}`;
}

function intIn(name: string, text: string | undefined, fallback: number, min: number, max: number): Result<number> {
  if (text === undefined) return ok(fallback);
  const n = Number(text);
  if (!/^-?[0-9]+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    return fail('INVALID_ARGUMENT', `${name} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return ok(n);
}

export type ParsedCommand =
  | { readonly command: 'run'; readonly options: BenchOptions }
  | { readonly command: 'profile-summary'; readonly files: readonly string[]; readonly top: number; readonly json: boolean }
  | { readonly command: 'help' };

/** Parses argv (without node and script); a failed Result carries the message for the user. */
export function parseBenchArgs(argv: readonly string[]): Result<ParsedCommand> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        concurrency: { type: 'string', short: 'c' },
        sweep: { type: 'string' },
        duration: { type: 'string', short: 'd' },
        warmup: { type: 'string', short: 'w' },
        banks: { type: 'string' },
        accounts: { type: 'string' },
        prefix: { type: 'string' },
        password: { type: 'string' },
        currency: { type: 'string' },
        balance: { type: 'string' },
        history: { type: 'string' },
        'same-bank-share': { type: 'string' },
        amount: { type: 'string' },
        seed: { type: 'string' },
        workers: { type: 'string' },
        channels: { type: 'string' },
        'call-timeout-ms': { type: 'string' },
        dir: { type: 'string' },
        keep: { type: 'boolean' },
        config: { type: 'string' },
        pid: { type: 'string', multiple: true },
        'cpu-prof': { type: 'string' },
        discovery: { type: 'string' },
        store: { type: 'string' },
        gateways: { type: 'string' },
        'kill-gateway-after': { type: 'string' },
        set: { type: 'string', multiple: true },
        trace: { type: 'string' },
        json: { type: 'boolean' },
        docs: { type: 'string' },
        label: { type: 'string' },
        quiet: { type: 'boolean', short: 'q' },
        top: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return fail('INVALID_ARGUMENT', (err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return ok({ command: 'help' });
  const [first, ...rest] = parsed.positionals;
  if (first === 'profile-summary') {
    if (rest.length === 0) return fail('INVALID_ARGUMENT', 'profile-summary needs at least one .cpuprofile file');
    const top = intIn('--top', v.top, 25, 1, 10_000);
    if (!top.ok) return top;
    return ok({ command: 'profile-summary', files: rest, top: top.value, json: v.json ?? false });
  }
  if (first !== undefined) return fail('INVALID_ARGUMENT', `unexpected argument "${first}"`);

  const ints = {
    concurrency: intIn('--concurrency', v.concurrency, DEFAULTS.concurrency, 1, BENCH_LIMITS.concurrencyMax),
    durationS: intIn('--duration', v.duration, DEFAULTS.durationS, 1, BENCH_LIMITS.durationSMax),
    warmupS: intIn('--warmup', v.warmup, DEFAULTS.warmupS, 0, BENCH_LIMITS.durationSMax),
    banks: intIn('--banks', v.banks, DEFAULTS.banks, 1, BENCH_LIMITS.banksMax),
    accounts: intIn('--accounts', v.accounts, DEFAULTS.accounts, 1, BENCH_LIMITS.accountsMax),
    historyRows: intIn('--history', v.history, DEFAULTS.historyRows, 0, BENCH_LIMITS.historyRowsMax),
    seed: intIn('--seed', v.seed, DEFAULTS.seed, 0, 2 ** 32 - 1),
    workers: intIn('--workers', v.workers, DEFAULTS.workers, 1, BENCH_LIMITS.workersMax),
    channels: intIn('--channels', v.channels, DEFAULTS.channels, 1, BENCH_LIMITS.channelsMax),
    callTimeoutMs: intIn('--call-timeout-ms', v['call-timeout-ms'], DEFAULTS.callTimeoutMs, 1, 600_000),
    gateways: intIn('--gateways', v.gateways, 1, 1, BENCH_LIMITS.gatewaysMax),
  };
  for (const r of Object.values(ints)) if (!r.ok) return r;
  const n = Object.fromEntries(Object.entries(ints).map(([k, r]) => [k, (r as { value: number }).value])) as Record<keyof typeof ints, number>;

  let sweep: number[] | undefined;
  if (v.sweep !== undefined) {
    sweep = [];
    for (const part of v.sweep.split(',')) {
      const c = intIn('--sweep', part, 0, 1, BENCH_LIMITS.concurrencyMax);
      if (!c.ok) return c;
      sweep.push(c.value);
    }
  }
  const share = v['same-bank-share'] === undefined ? DEFAULTS.sameBankShare : Number(v['same-bank-share']);
  if (!Number.isFinite(share) || share < 0 || share > 1) return fail('INVALID_ARGUMENT', '--same-bank-share must be a number from 0 to 1');
  const amount = parseAmountDist(v.amount ?? DEFAULTS.amount);
  if (!amount.ok) return amount;
  const prefix = v.prefix ?? DEFAULTS.prefix;
  if (!isName(`${prefix}0`)) return fail('INVALID_ARGUMENT', `--prefix "${prefix}" does not make valid user names`);
  const currency = v.currency ?? DEFAULTS.currency;
  if (!isCurrency(currency)) return fail('INVALID_ARGUMENT', `--currency: unknown currency "${currency}"`);
  const pids: Record<string, number> = {};
  for (const p of v.pid ?? []) {
    const m = /^([A-Za-z0-9_.-]+)=([1-9][0-9]*)$/.exec(p);
    if (!m) return fail('INVALID_ARGUMENT', `--pid "${p}": use NAME=PID`);
    pids[m[1]!] = Number(m[2]);
  }
  const maxC = Math.max(n.concurrency, ...(sweep ?? []));
  if (v.config === undefined && maxC > n.banks * n.accounts) {
    return fail('INVALID_ARGUMENT', `C=${maxC} sessions need ${maxC} accounts; banks x accounts is only ${n.banks * n.accounts}`);
  }
  const discovery = v.discovery ?? 'consul';
  if (discovery !== 'consul' && discovery !== 'static') return fail('INVALID_ARGUMENT', `--discovery "${discovery}": use consul or static`);
  const store = v.store ?? 'sqlite';
  if (store !== 'sqlite' && store !== 'postgres') return fail('INVALID_ARGUMENT', `--store "${store}": use sqlite or postgres`);
  if (n.gateways > 1 && store !== 'postgres') return fail('INVALID_ARGUMENT', `--gateways ${n.gateways} needs --store postgres (instances share its log)`);
  let killGatewayAfterS: number | undefined;
  if (v['kill-gateway-after'] !== undefined) {
    const k = intIn('--kill-gateway-after', v['kill-gateway-after'], 0, 0, n.durationS - 1);
    if (!k.ok) return k;
    if (n.gateways < 2 || sweep !== undefined) return fail('INVALID_ARGUMENT', '--kill-gateway-after needs --gateways >= 2 and one concurrency (no --sweep)');
    killGatewayAfterS = k.value;
  }
  if (v.config !== undefined && (v.dir !== undefined || n.historyRows > 0 || v['cpu-prof'] !== undefined || v.discovery !== undefined
    || v.store !== undefined || v.gateways !== undefined)) {
    return fail('INVALID_ARGUMENT', '--dir, --history, --cpu-prof, --discovery, --store and --gateways apply to a launched system, not with --config');
  }
  const trace = v.trace ?? (v.config === undefined ? 'on' : 'off');
  if (trace !== 'on' && trace !== 'off') return fail('INVALID_ARGUMENT', `--trace "${trace}": use on or off`);
  return ok({
    command: 'run',
    options: {
      ...n,
      sweep,
      prefix,
      password: v.password ?? DEFAULTS.password,
      currency,
      balance: v.balance ?? DEFAULTS.balance,
      sameBankShare: share,
      amount: amount.value,
      dir: v.dir,
      keep: v.keep ?? false,
      targetConfig: v.config,
      pids,
      cpuProfDir: v['cpu-prof'],
      discovery,
      store,
      killGatewayAfterS,
      sets: v.set ?? [],
      trace: trace === 'on',
      json: v.json ?? false,
      docs: v.docs,
      label: v.label ?? DEFAULTS.label,
      quiet: v.quiet ?? false,
    },
  });
}

// ---- seeded choices --------------------------------------------------------------------------

export { rng } from '../core/random.js';

/** A uniform integer in [0, n). */
export function pick(random: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

export function sampleAmount(d: AmountDist, random: () => number): bigint {
  if (d.kind === 'fixed') return d.minor;
  const span = d.maxMinor - d.minMinor + 1n;
  // Spans beyond 2^53 lose uniformity in the low bits; amounts that large are not a benchmark case.
  return d.minMinor + (BigInt(Math.floor(random() * Number(span))) % span);
}

export interface Party {
  readonly bank: number;
  readonly user: number;
}

/**
 * The recipient of one transfer from `payer`: with probability `sameBankShare` another account at
 * the payer's bank, otherwise an account at a uniformly chosen other bank. Never the payer itself.
 */
export function pickRecipient(payer: Party, banks: number, accounts: number, sameBankShare: number, random: () => number): Party {
  const canSame = accounts > 1;
  const same = banks === 1 || (canSame && random() < sameBankShare);
  if (same) {
    if (!canSame) throw new Error('a same-bank transfer needs at least 2 accounts per bank');
    const u = pick(random, accounts - 1);
    return { bank: payer.bank, user: u >= payer.user ? u + 1 : u };
  }
  const b = pick(random, banks - 1);
  return { bank: b >= payer.bank ? b + 1 : b, user: pick(random, accounts) };
}

/** Session s logs in as user floor(s / banks) at bank s % banks: payers are spread over the banks. */
export function sessionParty(session: number, banks: number): Party {
  return { bank: session % banks, user: Math.floor(session / banks) };
}

/** BankA, BankB, ... */
export function bankName(i: number): string {
  return `Bank${String.fromCharCode(65 + i)}`;
}

import { ClientError, Status, type Metadata } from 'nice-grpc';
import { Ledger } from '../../src/bank/ledger.js';
import { ConfigSchema } from '../../src/config/schema.js';
import type { EntryDirection } from '../../src/gen/bank/v1/bank.js';
import { listUnfinished } from '../../src/gateway/admin.js';
import { reasonOf } from '../../src/grpc/errors.js';
import type { Cluster } from './cluster.js';
import type { NodeProcess } from './processes.js';

// Shared by the crash tests (failpoints, termination, chaos): what a transfer's key finally
// resolved to, and what is left unfinished anywhere in the system.

type GatewayClient = ReturnType<Cluster['gatewayClient']>;
type BankClient = ReturnType<Cluster['bankClient']>;

const gatewayClients = new WeakMap<Cluster, GatewayClient>();
const bankClients = new WeakMap<Cluster, Map<string, BankClient>>();

/** One long-lived gateway client per cluster (its channel reconnects after a restart). */
export function gatewayOf(cluster: Cluster): GatewayClient {
  let c = gatewayClients.get(cluster);
  if (!c) gatewayClients.set(cluster, (c = cluster.gatewayClient()));
  return c;
}

/** One long-lived client per bank (gateway certificate). */
export function bankOf(cluster: Cluster, bank: string): BankClient {
  let m = bankClients.get(cluster);
  if (!m) bankClients.set(cluster, (m = new Map()));
  let c = m.get(bank);
  if (!c) m.set(bank, (c = cluster.bankClient(bank)));
  return c;
}

export type Outcome = { kind: 'committed'; txId: string } | { kind: 'aborted'; reason: string };

/** An answer that says nothing about the transfer (the gateway is down or restarting): ask again. */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof ClientError)) return false;
  const reason = reasonOf(err);
  if (reason === undefined) return err.code === Status.UNAVAILABLE || err.code === Status.DEADLINE_EXCEEDED || err.code === Status.CANCELLED || err.code === Status.UNKNOWN || err.code === Status.INTERNAL;
  // INTERNAL: "the transfer could not be completed; retry with the same idempotency key".
  return reason === 'TRANSFER_IN_PROGRESS' || reason === 'SHUTTING_DOWN' || reason === 'OVERLOADED' || reason === 'INTERNAL';
}

/** The outcome a CreateTransfer answer reports, or undefined when it reports none (retryable). */
export function outcomeOf(result: unknown, err?: unknown): Outcome | undefined {
  if (err === undefined) {
    const id = (result as { transfer?: { transactionId: string } }).transfer?.transactionId;
    if (!id) throw new Error('CreateTransfer answered without a transfer');
    return { kind: 'committed', txId: id };
  }
  if (isRetryable(err)) return undefined;
  const reason = reasonOf(err);
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- not a domain outcome: the call's own error, rethrown as it came
  if (!reason) throw err;
  return { kind: 'aborted', reason };
}

export interface TransferArgs {
  metadata: Metadata;
  toBank: string;
  toUsername: string;
  amountMinor: bigint;
  key: string;
}

/** Sends (or replays) a transfer until its answer is an outcome, up to timeoutMs. */
export async function resolveOutcome(cluster: Cluster, t: TransferArgs, timeoutMs = 30_000): Promise<Outcome> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const res = await gatewayOf(cluster).createTransfer(
        { idempotencyKey: t.key, toBank: t.toBank, toUsername: t.toUsername, amountMinor: t.amountMinor, currency: 'EUR' },
        { metadata: t.metadata, deadline: 8000 },
      );
      return outcomeOf(res) as Outcome;
    } catch (err) {
      const o = outcomeOf(undefined, err);
      if (o) return o;
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`transfer ${t.key} has no outcome after ${timeoutMs} ms; last answer: ${String(last)}`);
}

/** How long a node armed with a failpoint may take to reach it (a failure bound, not a latency claim). */
const CRASH_WAIT_MS = 60_000;
/** Between attempts whose answer said nothing about the transfer. */
const CRASH_RETRY_PAUSE_MS = 200;

export interface Crash {
  /** The answer the client got, if it said what became of the transfer. */
  outcome?: Outcome;
  /** The armed node's exit ('SIGKILL' at a failpoint), or 'still running' after CRASH_WAIT_MS. */
  exit: number | string;
  /** Every answer and the node's output, for an assertion's message. */
  story: string;
}

/**
 * Makes `call` (one CreateTransfer, always with the same key) against a node armed with a
 * failpoint, and waits (bounded) for the node to exit there. The call is made again while its
 * answer says nothing about the transfer and the node is up: a gateway just restarted can be
 * refused at the client's own channel (UNAVAILABLE while it reconnects), and then no transfer
 * reaches the crash point. CI once waited the whole bound for that.
 */
export async function untilCrash(armed: NodeProcess, call: () => Promise<unknown>): Promise<Crash> {
  const answers: string[] = [];
  const exited = armed.exited.then((exit) => ({ exit }));
  const end = Date.now() + CRASH_WAIT_MS;
  let outcome: Outcome | undefined;
  for (;;) {
    try {
      outcome = outcomeOf(await call());
    } catch (err) {
      outcome = outcomeOf(undefined, err);
      answers.push(String(err));
    }
    if (outcome) break;
    const left = end - Date.now();
    if (left <= 0) break;
    const gone = await Promise.race([exited, pause(Math.min(left, CRASH_RETRY_PAUSE_MS))]);
    if (gone) break;
  }
  const exit = (await Promise.race([exited, pause(Math.max(0, end - Date.now()))]))?.exit ?? 'still running';
  const story = [`outcome: ${JSON.stringify(outcome)}`, ...answers.map((a) => `answer: ${a}`), armed.output()].join('\n');
  return { outcome, exit, story };
}

function pause(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms).unref());
}

/** Prepared legs at a bank, read from its ledger file (safe next to the running bank: WAL). */
export function inDoubtAt(cluster: Cluster, bank: string): string[] {
  const ledger = Ledger.open(cluster.config.banks[bank].dataDir);
  try {
    return ledger.inDoubt(1000).map((t) => t.txId);
  } finally {
    ledger.close();
  }
}

/** Unfinished transfers in the gateway's store. */
export async function unfinishedAtGateway(cluster: Cluster): Promise<string[]> {
  return (await listUnfinished(ConfigSchema.parse(cluster.config).gateway, 1000)).map((t) => `${t.transactionId}:${t.state}:${t.awaiting.join('+')}`);
}

/** Everything still in flight anywhere: empty when the system has settled. */
export async function leftovers(cluster: Cluster): Promise<string[]> {
  const out: string[] = [];
  for (const bank of Object.keys(cluster.config.banks)) for (const id of inDoubtAt(cluster, bank)) out.push(`${bank} in-doubt ${id}`);
  for (const u of await unfinishedAtGateway(cluster)) out.push(`gateway unfinished ${u}`);
  for (const u of cluster.users) {
    const b = await bankOf(cluster, u.bank).getBalance({ username: u.username });
    if (b.availableMinor !== b.balanceMinor) out.push(`${u.username}@${u.bank} holds ${b.balanceMinor - b.availableMinor}`);
  }
  return out;
}

/** History entries of one account for one transaction id, read from the bank with the gateway's cert. */
export async function historyFor(cluster: Cluster, bank: string, username: string): Promise<{ txId: string; direction: EntryDirection; amountMinor: bigint }[]> {
  const client = bankOf(cluster, bank);
  const out: { txId: string; direction: EntryDirection; amountMinor: bigint }[] = [];
  let pageToken = '';
  for (let i = 0; i < 10_000; i++) {
    const page = await client.listTransactions({ username, pageSize: 100, pageToken });
    for (const e of page.entries) out.push({ txId: e.transactionId, direction: e.direction, amountMinor: e.amountMinor });
    pageToken = page.nextPageToken;
    if (!pageToken) return out;
  }
  throw new Error(`history of ${username}@${bank} has too many pages`);
}

/** Sum of balances and of holds over every user, read from the banks (reused channels). */
export async function balances(cluster: Cluster): Promise<{ balanceMinor: bigint; heldMinor: bigint; byUser: Map<string, bigint> }> {
  let balanceMinor = 0n;
  let heldMinor = 0n;
  const byUser = new Map<string, bigint>();
  for (const u of cluster.users) {
    const b = await bankOf(cluster, u.bank).getBalance({ username: u.username });
    balanceMinor += b.balanceMinor;
    heldMinor += b.balanceMinor - b.availableMinor;
    byUser.set(`${u.username}@${u.bank}`, b.balanceMinor);
  }
  return { balanceMinor, heldMinor, byUser };
}

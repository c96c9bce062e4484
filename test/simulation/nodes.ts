import fs from 'node:fs';
import path from 'node:path';
import type { CallContext } from 'nice-grpc-common';
import { Ledger } from '../../src/bank/ledger.js';
import { bankService, type BankServiceLimits } from '../../src/bank/service.js';
import { InDoubtResolver, type CoordinatorDecision, type DecisionSource, type InDoubtLimits } from '../../src/bank/termination.js';
import { AppError } from '../../src/core/errors.js';
import { rng } from '../../src/core/random.js';
import type { GroupCommitLimits } from '../../src/gateway/store/sqlite.js';
import { SqliteTransferLog } from '../../src/gateway/store/sqlite.js';
import { TransferEngine, type TransferEngineLimits } from '../../src/gateway/transfer-engine.js';
import type { BankBatchClient, BatchClientSource } from '../../src/gateway/bank-batches.js';
import {
  AbortBatchRequest,
  AbortBatchResponse,
  CommitBatchRequest,
  CommitBatchResponse,
  PrepareBatchRequest,
  PrepareBatchResponse,
  TransactionState,
  Vote,
  type BankServiceImplementation,
} from '../../src/gen/bank/v1/bank.js';
import type { Logger } from '../../src/logging/logger.js';
import type { SimNetwork } from './network.js';
import type { Incarnation, SimTime } from './sim-clock.js';

// The simulated nodes: the real gateway (SqliteTransferLog + TransferEngine, with its driver and the
// pure coordinator) and the real banks (Ledger + bankService over its group commit + the
// InDoubtResolver), each on its own SQLite file. A crash closes the file at once: what SQLite
// committed stays (better-sqlite3 commits synchronously), every queue and timer of the process is
// gone. Calls between them are messages of the simulated network, encoded and decoded with the
// generated protobuf codecs as gRPC would.

/** Logs nothing, costs nothing. */
export const quietLogger = new Proxy({}, { get: () => () => undefined }) as unknown as Logger;

const NO_CONTEXT = {} as CallContext;

/** A protobuf round trip: what the other side decodes from the bytes. */
function wire<T>(codec: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }, message: T): T {
  return codec.decode(codec.encode(message).finish());
}

/** Hooks the simulator checks invariants in, at the moment things happen. */
export interface Observer {
  /** The gateway is sending Commit for these transactions now. */
  commitSent(txIds: readonly string[]): void;
  /** A bank answered: per transaction, 'yes' | 'no' for prepares, 'committed' | 'aborted' for phase 2. */
  bankAnswered(bank: string, kind: 'prepare' | 'commit' | 'abort', txIds: readonly string[], answers: readonly string[]): void;
}

export interface SimLimits {
  readonly gateway: TransferEngineLimits & GroupCommitLimits;
  readonly bank: BankServiceLimits & InDoubtLimits;
}

export class GatewayNode implements Incarnation {
  readonly name = 'gateway';
  epoch = 0;
  up = false;
  store: SqliteTransferLog | undefined;
  engine: TransferEngine | undefined;

  constructor(
    private readonly time: SimTime,
    private readonly file: string,
    private readonly limits: SimLimits['gateway'],
    private readonly banks: () => BatchClientSource,
    private readonly seed: number,
  ) {}

  start(): Promise<void> {
    this.up = true;
    const clock = this.time.clockOf(this);
    this.store = new SqliteTransferLog(this.file, { groupCommit: this.limits, clock });
    this.engine = new TransferEngine({
      store: this.store,
      bankClients: this.banks(),
      limits: this.limits,
      logger: quietLogger,
      clock,
      random: rng(this.seed * 7919 + this.epoch),
    });
    return this.engine.start();
  }

  crash(): void {
    this.up = false;
    this.epoch++;
    this.store?.crash();
    this.store = undefined;
    this.engine = undefined;
  }
}

export class BankNode implements Incarnation {
  epoch = 0;
  up = false;
  ledger: Ledger | undefined;
  service: BankServiceImplementation | undefined;

  constructor(
    readonly name: string,
    private readonly time: SimTime,
    readonly dataDir: string,
    private readonly limits: SimLimits['bank'],
    private readonly decisions: DecisionSource,
    private readonly seed: number,
  ) {}

  get file(): string {
    return path.join(this.dataDir, 'ledger.sqlite');
  }

  start(): void {
    this.up = true;
    const clock = this.time.clockOf(this);
    this.ledger = Ledger.open(this.dataDir, () => clock.nowMs());
    this.service = bankService(this.ledger, this.limits, clock);
    new InDoubtResolver(this.ledger, this.decisions, this.limits, quietLogger, clock, rng(this.seed * 104729 + this.epoch)).start();
  }

  crash(): void {
    this.up = false;
    this.epoch++;
    this.ledger?.close();
    this.ledger = undefined;
    this.service = undefined;
  }
}

/** The gateway's view of the banks: a client per known bank whose calls are network messages. */
export function simBankClients(net: SimNetwork, gateway: GatewayNode, banks: ReadonlyMap<string, BankNode>, observer: Observer): BatchClientSource {
  const clients = new Map<string, BankBatchClient>();
  for (const [name, bank] of banks) {
    const service = () => {
      if (!bank.service) throw new AppError('BANK_UNAVAILABLE', `${name} is down`);
      return bank.service;
    };
    clients.set(name, {
      prepareBatch: (req, opts) => {
        const ids = req.legs.map((l) => l.transactionId);
        return net.call(gateway, bank, 'PrepareBatch', `prepare ${name} ${ids.join(',')}`, opts.deadline, async () => {
          const res = await service().prepareBatch(wire(PrepareBatchRequest, req), NO_CONTEXT);
          const out = wire(PrepareBatchResponse, PrepareBatchResponse.fromPartial(res));
          observer.bankAnswered(name, 'prepare', ids, out.votes.map((v) => (v.vote === Vote.VOTE_YES ? 'yes' : `no:${v.reason}`)));
          return out;
        });
      },
      commitBatch: (req, opts) => {
        observer.commitSent(req.transactionIds);
        return net.call(gateway, bank, 'CommitBatch', `commit ${name} ${req.transactionIds.join(',')}`, opts.deadline, async () => {
          const res = await service().commitBatch(wire(CommitBatchRequest, req), NO_CONTEXT);
          const out = wire(CommitBatchResponse, CommitBatchResponse.fromPartial(res));
          observer.bankAnswered(name, 'commit', req.transactionIds, out.states.map(stateName));
          return out;
        });
      },
      abortBatch: (req, opts) =>
        net.call(gateway, bank, 'AbortBatch', `abort ${name} ${req.transactionIds.join(',')}`, opts.deadline, async () => {
          const res = await service().abortBatch(wire(AbortBatchRequest, req), NO_CONTEXT);
          const out = wire(AbortBatchResponse, AbortBatchResponse.fromPartial(res));
          observer.bankAnswered(name, 'abort', req.transactionIds, out.states.map(stateName));
          return out;
        }),
    });
  }
  return { get: (bank) => clients.get(bank) };
}

/** A bank's termination protocol asks the gateway's decisionOf over the network. */
export function simDecisionSource(net: SimNetwork, bank: () => BankNode, gateway: GatewayNode, timeoutMs: number): DecisionSource {
  return {
    getDecision: (txId) =>
      net.call(bank(), gateway, 'GetDecision', `decision? ${txId}`, timeoutMs, async (): Promise<CoordinatorDecision> => {
        if (!gateway.engine) throw new AppError('SHUTTING_DOWN', 'gateway is down');
        return gateway.engine.decisionOf(txId);
      }),
    close: () => undefined,
  };
}

function stateName(s: TransactionState): string {
  if (s === TransactionState.TRANSACTION_STATE_COMMITTED) return 'committed';
  if (s === TransactionState.TRANSACTION_STATE_ABORTED) return 'aborted';
  return TransactionState[s] ?? String(s);
}

export function freshDir(root: string, name: string): string {
  const dir = path.join(root, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

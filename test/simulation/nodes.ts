import Database from 'better-sqlite3';
import type { CallContext } from 'nice-grpc-common';
import { Ledger } from '../../src/bank/ledger.js';
import { bankService, type BankCalls, type BankServiceLimits } from '../../src/bank/service.js';
import { InDoubtResolver, type CoordinatorDecision, type DecisionSource, type InDoubtLimits } from '../../src/bank/termination.js';
import { assert } from '../../src/core/assert.js';
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
} from '../../src/gen/bank/v1/bank.js';
import type { Logger } from '../../src/logging/logger.js';
import type { SimNetwork } from './network.js';
import type { Incarnation, SimTime } from './sim-clock.js';

// The simulated nodes: the real gateway (SqliteTransferLog + TransferEngine, with its driver and the
// pure coordinator) and the real banks (Ledger + bankService over its group commit + the
// InDoubtResolver), each on its own SQLite database (SimDisk). A crash closes the database at once:
// what SQLite committed stays (better-sqlite3 commits synchronously), every queue and timer of the
// process is gone. Calls between them are messages of the simulated network, encoded and decoded
// with the generated protobuf codecs as gRPC would.

/**
 * A node's disk: an in-memory SQLite database that outlives the node. An incarnation opens it with
 * what the last one committed; a crash keeps exactly that (better-sqlite3 transactions are
 * synchronous, so none is ever open between two events) and closes the handle, so that code of
 * the dead incarnation can write nothing more. No file, no WAL, no fsync: the same SQL, the same
 * constraints, the same crash semantics as the node's file on a disk that never loses a commit.
 */
export class SimDisk {
  /** What was committed when the node last went down (a serialized database). */
  private image: Buffer | undefined;
  private live: Database.Database | undefined;
  private reader: Database.Database | undefined;
  /** Every write fails, reads work: the disk went read-only (as ext4 remounts itself after an I/O error). */
  private failing = false;

  constructor(readonly name: string, image?: Buffer) {
    this.image = image;
  }

  /** Opens the database for a new incarnation (which owns the handle and may close it). */
  open(): Database.Database {
    assert(this.live === undefined || !this.live.open, `${this.name}: opened twice`);
    this.closeReader();
    this.live = this.image ? new Database(this.image) : new Database(':memory:');
    this.applyWrites(this.live);
    return this.live;
  }

  /** Writes fail from now (true) or work again (false), for the live database and later incarnations. */
  setFailing(failing: boolean): void {
    this.failing = failing;
    if (this.live?.open) this.applyWrites(this.live);
  }

  private applyWrites(db: Database.Database): void {
    db.pragma(`query_only = ${this.failing ? 1 : 0}`);
  }

  /** The node crashes: what is committed stays, the handle closes at once. */
  crash(): void {
    const db = this.live;
    this.live = undefined;
    if (!db?.open) return;
    assert(!db.inTransaction, `${this.name}: crash inside a transaction`);
    this.image = db.serialize();
    db.close();
  }

  /**
   * For the simulator's checks: the live database while the node is up, else a read-only copy
   * of what it committed. Only read it between two events (what is committed, as a second
   * connection would see it).
   */
  read(): Database.Database {
    if (this.live?.open) {
      assert(!this.live.inTransaction, `${this.name}: read inside a transaction`);
      return this.live;
    }
    assert(this.image !== undefined, `${this.name}: nothing was ever written`);
    this.reader ??= new Database(this.image, { readonly: true });
    return this.reader;
  }

  /** The end of the scenario. */
  close(): void {
    this.crash();
    this.closeReader();
  }

  private closeReader(): void {
    this.reader?.close();
    this.reader = undefined;
  }
}

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
  /** Group commits of the log that failed (its disk failing writes), over every incarnation. */
  failedLogWrites = 0;

  constructor(
    private readonly time: SimTime,
    readonly disk: SimDisk,
    private readonly limits: SimLimits['gateway'],
    private readonly banks: () => BatchClientSource,
    private readonly seed: number,
  ) {}

  start(): Promise<void> {
    this.up = true;
    const clock = this.time.clockOf(this);
    this.store = new SqliteTransferLog(this.disk.name, {
      groupCommit: this.limits,
      clock,
      database: this.disk.open(),
      groupCommitObserver: { writeStarted: () => (ok) => { if (!ok) this.failedLogWrites++; } },
    });
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
    this.disk.crash();
    this.store?.crash();
    this.store = undefined;
    this.engine = undefined;
  }
}

export class BankNode implements Incarnation {
  epoch = 0;
  up = false;
  ledger: Ledger | undefined;
  service: BankCalls | undefined;
  /** Group commits of the ledger that failed (its disk failing writes), over every incarnation. */
  failedLedgerWrites = 0;

  constructor(
    readonly name: string,
    private readonly time: SimTime,
    readonly disk: SimDisk,
    private readonly limits: SimLimits['bank'],
    private readonly decisions: DecisionSource,
    private readonly seed: number,
  ) {}

  start(): void {
    this.up = true;
    const clock = this.time.clockOf(this);
    this.ledger = Ledger.over(this.disk.open(), this.disk.name, () => clock.nowMs());
    this.service = bankService(this.ledger, this.limits, clock, {
      writeStarted: () => (ok) => { if (!ok) this.failedLedgerWrites++; },
      performed: () => {},
    });
    new InDoubtResolver(this.ledger, this.decisions, this.limits, quietLogger, clock, rng(this.seed * 104729 + this.epoch)).start();
  }

  crash(): void {
    this.up = false;
    this.epoch++;
    this.disk.crash();
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

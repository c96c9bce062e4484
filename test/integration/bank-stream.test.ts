import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Status } from 'nice-grpc';
import { seed } from '../../src/bank/admin.js';
import { BatchStreams, type BatchCalls } from '../../src/bank/batch-stream.js';
import { startBankServer, type RunningBank } from '../../src/bank/server.js';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { systemClock } from '../../src/core/clock.js';
import { newId } from '../../src/core/ids.js';
import { BankServiceDefinition, LegKind, TransactionState, Vote, type PrepareBatchRequest, type PrepareLeg } from '../../src/gen/bank/v1/bank.js';
import type { Discovery } from '../../src/discovery/discovery.js';
import { BankClients } from '../../src/gateway/bank-clients.js';
import { BankBatchStream } from '../../src/gateway/bank-stream.js';
import { createNodeClient, type NodeClient } from '../../src/grpc/client.js';
import { createNodeServer, listenTls } from '../../src/grpc/server.js';
import { silentLogger } from '../../src/logging/logger.js';
import { loadTls } from '../../src/tls/credentials.js';
import { CALL_LIMITS, eventually } from '../helpers/cluster.js';
import { ManualClock } from '../helpers/clock.js';
import { expectFailure } from '../helpers/expect-failure.js';
import { ROOT } from '../helpers/processes.js';

// The gateway's 2PC batches as messages on one BatchStream (src/gateway/bank-stream.ts) against a
// real bank server (src/bank/batch-stream.ts) over mutual TLS on loopback, and against small
// servers that lack the method or hold an answer back.

const logger = silentLogger();
const DEADLINE_MS = 10_000;

function leg(kind: 'debit' | 'credit', username: string, amountMinor: bigint, transactionId = newId()): PrepareLeg {
  return {
    transactionId,
    kind: kind === 'debit' ? LegKind.LEG_KIND_DEBIT : LegKind.LEG_KIND_CREDIT,
    username,
    amountMinor,
    currency: 'EUR',
    counterpartyBank: 'BankA',
    counterpartyUsername: kind === 'debit' ? 'carol' : 'alice',
  };
}

describe('2PC batches on one BatchStream (mutual TLS)', function () {
  this.timeout(60_000);
  let dir: string;
  let config: Config;
  let bank: RunningBank;
  const nodes: NodeClient<typeof BankServiceDefinition>[] = [];
  const streams: BankBatchStream[] = [];

  const connect = (port: number, identity = 'gateway') => {
    const node = createNodeClient(BankServiceDefinition, `localhost:${port}`, loadTls(config.tls.dir, identity), logger, CALL_LIMITS);
    nodes.push(node);
    const stream = new BankBatchStream(node.lean, systemClock);
    streams.push(stream);
    return stream;
  };

  /**
   * A bank server of our own that votes YES to every leg (after `hold`, if given) and acknowledges
   * every commit and abort, on a definition with or without BatchStream.
   */
  const serveYes = async (withStream: boolean, hold?: (req: PrepareBatchRequest) => Promise<void>) => {
    const seen = { prepareBatches: 0 };
    const calls: BatchCalls = {
      prepareBatch: async (req) => {
        await hold?.(req);
        seen.prepareBatches += 1;
        return { votes: req.legs.map(() => ({ vote: Vote.VOTE_YES, reason: '', message: '' })) };
      },
      commitBatch: async (req) => ({ states: req.transactionIds.map(() => TransactionState.TRANSACTION_STATE_COMMITTED) }),
      abortBatch: async (req) => ({ states: req.transactionIds.map(() => TransactionState.TRANSACTION_STATE_ABORTED) }),
    };
    const server = createNodeServer(logger, { slowCallMs: config.logging.slowCallMs });
    const refuse = async (): Promise<never> => {
      throw new Error('not in this test bank');
    };
    const base = { authenticate: refuse, getBalance: refuse, listTransactions: refuse, prepareDebit: refuse, prepareCredit: refuse, commit: refuse, abort: refuse, ...calls };
    if (withStream) {
      server.add(BankServiceDefinition, { ...base, batchStream: new BatchStreams(logger).handler(calls) });
    } else {
      const { batchStream: _omitted, ...methods } = BankServiceDefinition.methods;
      server.add({ ...BankServiceDefinition, methods }, base);
    }
    const port = await listenTls(server, '127.0.0.1', 0, loadTls(config.tls.dir, 'BankA'));
    return { port, seen, stop: () => server.forceShutdown() };
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bank-stream-'));
    execFileSync(path.join(ROOT, 'scripts/gen-certs.sh'), [path.join(dir, 'certs'), 'BankA'], { stdio: 'ignore' });
    config = ConfigSchema.parse({
      tls: { dir: path.join(dir, 'certs') },
      logging: { dir: path.join(dir, 'logs'), console: false },
      banks: { BankA: { host: '127.0.0.1', port: 0, dataDir: path.join(dir, 'BankA') } },
      bank: { batchItemsMax: 4 },
      gateway: { bankBatchMaxItems: 4 },
    });
    bank = await startBankServer(config, 'BankA', logger);
    await seed(bank.ledger, 'BankA');
  });

  after(async () => {
    for (const s of streams) s.close();
    for (const n of nodes) n.close();
    await bank?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers prepare, commit and abort batches sent together, each by its id, as the unary calls would', async () => {
    const gw = connect(bank.port);
    const before = bank.ledger.totals();
    const paid = newId();
    const dropped = newId();
    // Both legs of two transfers prepared in one batch each, sent at once on the stream.
    const [votesPaid, votesDropped] = await Promise.all([
      gw.prepareBatch({ legs: [leg('debit', 'alice', 1_000n, paid), leg('credit', 'carol', 1_000n, paid)] }, { deadline: DEADLINE_MS }),
      gw.prepareBatch({ legs: [leg('debit', 'alice', 700n, dropped), leg('credit', 'carol', 700n, dropped), leg('debit', 'nobody', 5n)] }, { deadline: DEADLINE_MS }),
    ]);
    expect(votesPaid.votes.map((v) => v.vote)).to.deep.equal([Vote.VOTE_YES, Vote.VOTE_YES]);
    expect(votesDropped.votes.map((v) => v.vote)).to.deep.equal([Vote.VOTE_YES, Vote.VOTE_YES, Vote.VOTE_NO]);
    expect(votesDropped.votes[2]?.reason).to.equal('ACCOUNT_NOT_FOUND');
    expect(bank.ledger.totals().heldMinor - before.heldMinor).to.equal(1_700n);

    const [committed, aborted] = await Promise.all([
      gw.commitBatch({ transactionIds: [paid] }, { deadline: DEADLINE_MS }),
      gw.abortBatch({ transactionIds: [dropped] }, { deadline: DEADLINE_MS }),
    ]);
    expect(committed.states).to.deep.equal([TransactionState.TRANSACTION_STATE_COMMITTED]);
    expect(aborted.states).to.deep.equal([TransactionState.TRANSACTION_STATE_ABORTED]);
    // Money moved inside the bank once, nothing is held, the sum is unchanged.
    const after = bank.ledger.totals();
    expect(after.heldMinor).to.equal(before.heldMinor);
    expect(after.balanceMinor).to.equal(before.balanceMinor);
    expect(bank.ledger.account('alice')?.balanceMinor).to.equal(100_000n - 1_000n);
    expect(bank.ledger.account('carol')?.balanceMinor).to.equal(50_000n + 1_000n);

    // Repeating the commit is safe and answers the same.
    expect((await gw.commitBatch({ transactionIds: [paid] }, { deadline: DEADLINE_MS })).states).to.deep.equal([TransactionState.TRANSACTION_STATE_COMMITTED]);
  });

  it('refuses a bad batch with its status and reason alone; the stream goes on', async () => {
    const gw = connect(bank.port);
    const tooMany = Array.from({ length: 5 }, () => newId());
    const refusals = await Promise.all([
      expectFailure(gw.commitBatch({ transactionIds: [] }, { deadline: DEADLINE_MS }), Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'),
      expectFailure(gw.abortBatch({ transactionIds: tooMany }, { deadline: DEADLINE_MS }), Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'),
      // A commit of a transaction the bank never prepared breaks an assertion at the bank: INTERNAL,
      // with nothing of the bank's internals in the message.
      expectFailure(gw.commitBatch({ transactionIds: [newId()] }, { deadline: DEADLINE_MS }), Status.INTERNAL, 'INTERNAL'),
    ]);
    expect(refusals[0].details).to.match(/must not be empty/);
    expect(refusals[1].details).to.match(/more than 4/);
    expect(refusals[2].details).to.equal('internal error');
    // Nothing of the refused batches was aborted (no tombstones).
    for (const id of tooMany) expect(bank.ledger.txState(id)).to.equal(undefined);
    const tx = newId();
    const votes = await gw.prepareBatch({ legs: [leg('debit', 'alice', 1n, tx)] }, { deadline: DEADLINE_MS });
    expect(votes.votes[0]?.vote).to.equal(Vote.VOTE_YES);
    await gw.abortBatch({ transactionIds: [tx] }, { deadline: DEADLINE_MS });
  });

  it('refuses a caller that is not the gateway, as every bank method does', async () => {
    const intruder = connect(bank.port, 'intruder');
    // The stream itself is refused (the lean client reads no error details: the status and text).
    const refused = await expectFailure(intruder.prepareBatch({ legs: [leg('debit', 'alice', 1n)] }, { deadline: DEADLINE_MS }), Status.PERMISSION_DENIED);
    expect(refused.details).to.match(/may not call \/bank\.v1\.BankService\/BatchStream/);
    expect(bank.ledger.totals().heldMinor).to.equal(0n);
  });

  it('ends the stream when the bank shuts down; calls fail with UNAVAILABLE, then a new stream serves the restarted bank', async () => {
    const gw = connect(bank.port);
    expect((await gw.prepareBatch({ legs: [leg('credit', 'carol', 1n)] }, { deadline: DEADLINE_MS })).votes[0]?.vote).to.equal(Vote.VOTE_YES);
    const port = bank.port;
    // With the stream open: a graceful stop must not wait for the gateway to close it.
    await bank.stop();
    await expectFailure(gw.prepareBatch({ legs: [leg('credit', 'carol', 1n)] }, { deadline: DEADLINE_MS }), Status.UNAVAILABLE);

    bank = await startBankServer({ ...config, banks: { BankA: { ...config.banks.BankA!, port } } }, 'BankA', logger);
    const tx = newId();
    await eventually(async (note) => {
      try {
        const res = await gw.prepareBatch({ legs: [leg('credit', 'carol', 1n, tx)] }, { deadline: DEADLINE_MS });
        return res.votes[0]?.vote === Vote.VOTE_YES;
      } catch (err) {
        note(String(err));
        return false;
      }
    }, 20_000, 'a prepare on a new stream to the restarted bank');
    expect(bank.ledger.txState(tx)).to.equal('prepared');
    expect((await gw.abortBatch({ transactionIds: [tx] }, { deadline: DEADLINE_MS })).states).to.deep.equal([TransactionState.TRANSACTION_STATE_ABORTED]);
  });

  it('falls back to unary calls for a bank without BatchStream (UNIMPLEMENTED), the waiting calls included', async () => {
    const old = await serveYes(false);
    try {
      const gw = connect(old.port);
      // Both sent before the UNIMPLEMENTED came back: both answered through unary calls.
      const answers = await Promise.all([
        gw.prepareBatch({ legs: [leg('debit', 'alice', 1n)] }, { deadline: DEADLINE_MS }),
        gw.commitBatch({ transactionIds: [newId(), newId()] }, { deadline: DEADLINE_MS }),
      ]);
      expect(answers[0].votes).to.have.length(1);
      expect(answers[1].states).to.deep.equal([TransactionState.TRANSACTION_STATE_COMMITTED, TransactionState.TRANSACTION_STATE_COMMITTED]);
      expect((await gw.prepareBatch({ legs: [leg('debit', 'alice', 1n), leg('credit', 'carol', 1n)] }, { deadline: DEADLINE_MS })).votes).to.have.length(2);
      expect(old.seen.prepareBatches).to.equal(2);
    } finally {
      old.stop();
    }
  });

  it('fails a batch the bank has not answered by its deadline with DEADLINE_EXCEEDED, and ignores the late answer', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = await serveYes(true, (req) => (req.legs[0]?.username === 'slow' ? held : Promise.resolve()));
    try {
      const gw = connect(slow.port);
      const late = gw.prepareBatch({ legs: [leg('debit', 'slow', 1n)] }, { deadline: 200 });
      // Another batch on the same stream is answered meanwhile: the slow one does not block it.
      expect((await gw.prepareBatch({ legs: [leg('debit', 'fast', 1n)] }, { deadline: DEADLINE_MS })).votes).to.have.length(1);
      await expectFailure(late, Status.DEADLINE_EXCEEDED);
      release();
      await eventually(async () => slow.seen.prepareBatches === 2, 10_000, 'the held batch answered late');
      // The late answer found no caller; the stream still serves.
      expect((await gw.commitBatch({ transactionIds: [newId()] }, { deadline: DEADLINE_MS })).states).to.have.length(1);
    } finally {
      release();
      slow.stop();
    }
  });

  it('retires the address a bank moved away from: no new batches there, the waiting one answered, the channel closed after its grace', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let arrived = false;
    const first = await serveYes(true, async () => {
      arrived = true;
      await held;
    });
    const second = await serveYes(true);
    let address = `localhost:${first.port}`;
    const discovery: Discovery = {
      bank: (name) => (name === 'BankA' ? { address } : undefined),
      bankNames: () => ['BankA'],
      gateways: () => [],
      onChange: () => () => undefined,
      close: async () => undefined,
    };
    // The grace of a retired channel: the longest a unary call can take (one attempt here).
    const clock = new ManualClock();
    const graceMs = CALL_LIMITS.callTimeoutMs;
    const clients = new BankClients(discovery, loadTls(config.tls.dir, 'gateway'), logger, CALL_LIMITS, clock, true);
    const yes = [Vote.VOTE_YES];
    try {
      const old = clients.lean('BankA')!;
      const oldUnary = clients.get('BankA')!;
      const waiting = old.prepareBatch({ legs: [leg('debit', 'alice', 1n)] }, { deadline: DEADLINE_MS });
      await eventually(async () => arrived, 10_000, 'the batch held at the first address');

      address = `localhost:${second.port}`;
      const moved = clients.lean('BankA')!;
      expect(moved).to.not.equal(old);
      expect((await moved.prepareBatch({ legs: [leg('debit', 'alice', 1n)] }, { deadline: DEADLINE_MS })).votes.map((v) => v.vote)).to.deep.equal(yes);
      // The old address takes no new batch (its caller retries at the new one)...
      await expectFailure(old.commitBatch({ transactionIds: [newId()] }, { deadline: DEADLINE_MS }), Status.UNAVAILABLE);
      // ...but the batch under way there gets its answer, and a unary call from a caller that
      // looked the bank up before the move still reaches it during the grace.
      release();
      expect((await waiting).votes.map((v) => v.vote)).to.deep.equal(yes);
      expect((await oldUnary.commitBatch({ transactionIds: [newId()] })).states).to.have.length(1);
      expect(clients.openChannels).to.equal(2);
      clock.advance(graceMs);
      expect(clients.openChannels).to.equal(1);

      // Back to the first address: the second one is retired the same way.
      address = `localhost:${first.port}`;
      const back = clients.lean('BankA')!;
      expect(back).to.not.equal(moved).and.to.not.equal(old);
      expect(clients.openChannels).to.equal(2);
      clock.advance(graceMs);
      expect(clients.openChannels).to.equal(1);
      expect((await back.commitBatch({ transactionIds: [newId()] }, { deadline: DEADLINE_MS })).states).to.have.length(1);
      expect(second.seen.prepareBatches).to.equal(1);
      clients.close();
      expect(clients.openChannels).to.equal(0);
    } finally {
      release();
      clients.close();
      first.stop();
      second.stop();
    }
  });
});

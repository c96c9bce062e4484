import { performance } from 'node:perf_hooks';
import type { BankCalls } from '../bank/service.js';
import type { Ledger } from '../bank/ledger.js';
import type { CriticalPathRecorder } from './critical-path.js';

// The bank's half of critical-path tracing (see critical-path.ts), built only when tracing is on.
// Per PrepareBatch / CommitBatch / AbortBatch call, on the bank's clock:
//   <rpc>.queue  from the handler's start to the start of the group commit that performed it
//                (the call's operations were submitted synchronously at the start);
//   <rpc>.flush  that group commit (one SQLite transaction: statements + COMMIT + fsync);
//   <rpc>.reply  from its end to the handler's answer;   <rpc>.total  the three together.
// Plus `group_commit` (every Ledger.execute) and `group_commit_ops` (operations per group commit,
// recorded as a count in the "ms" field). Group commits run one after another on the main thread,
// so the one serving a call is the first that started after the call did.

/** Recent group commits kept to match calls to them. */
const RECENT_COMMITS_MAX = 256;

interface Commit {
  readonly startedAt: number;
  readonly endedAt: number;
}

const now = () => performance.now();

export class BankTrace {
  private readonly commits: Commit[] = [];

  constructor(private readonly recorder: CriticalPathRecorder) {}

  /** Wraps Ledger.execute (the group commit's transaction) on this instance. */
  traceLedger(ledger: Ledger): void {
    const execute = ledger.execute.bind(ledger);
    ledger.execute = (ops) => {
      const startedAt = now();
      const results = execute(ops);
      const endedAt = now();
      this.commits.push({ startedAt, endedAt });
      if (this.commits.length > RECENT_COMMITS_MAX) this.commits.splice(0, this.commits.length - RECENT_COMMITS_MAX);
      this.recorder.record('group_commit', endedAt - startedAt);
      this.recorder.record('group_commit_ops', ops.length);
      return results;
    };
  }

  /** The service with its 2PC batch calls timed. */
  service(inner: BankCalls): BankCalls {
    return {
      ...inner,
      prepareBatch: this.timed('prepare', inner.prepareBatch.bind(inner)),
      commitBatch: this.timed('commit', inner.commitBatch.bind(inner)),
      abortBatch: this.timed('abort', inner.abortBatch.bind(inner)),
    };
  }

  private timed<Req, Res, Ctx>(rpc: string, handler: (req: Req, ctx: Ctx) => Promise<Res>): (req: Req, ctx: Ctx) => Promise<Res> {
    return async (req, ctx) => {
      const startedAt = now();
      const res = await handler(req, ctx);
      const answeredAt = now();
      const commit = this.commits.find((c) => c.startedAt >= startedAt);
      if (commit) {
        this.recorder.record(`${rpc}.queue`, commit.startedAt - startedAt);
        this.recorder.record(`${rpc}.flush`, commit.endedAt - commit.startedAt);
        this.recorder.record(`${rpc}.reply`, answeredAt - commit.endedAt);
      }
      this.recorder.record(`${rpc}.total`, answeredAt - startedAt);
      return res;
    };
  }
}

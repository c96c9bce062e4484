import { ClientError, Status } from 'nice-grpc-common';
import { AppError } from '../../src/core/errors.js';
import type { Random } from '../../src/core/random.js';
import type { Incarnation, SimTime } from './sim-clock.js';

// The simulated network: every message is an event after a delay; per message it may be lost,
// duplicated or delayed far beyond the others (so messages overtake each other), and partitions
// drop everything between two nodes. A message reaches only the incarnation of its destination
// that was up when it left (a restart resets connections); an answer reaches only the caller's
// incarnation that asked. Calls end with the caller's deadline, as gRPC calls do.

export interface NetworkProfile {
  readonly lossP: number;
  readonly duplicateP: number;
  /** Chance that a message is held back by up to `spikeMs` more. */
  readonly delayP: number;
  readonly spikeMs: number;
  readonly baseDelayMs: number;
  readonly jitterMs: number;
}

export type NetFault = 'loss' | 'duplicate' | 'delay' | 'partition' | 'refused';

/** Thrown by a node for a bug (an assertion): the simulator reports it as a violation. */
export type BugSink = (err: unknown, where: string) => void;

export class SimNetwork {
  /** Off once the faults stop: messages then arrive, in order of their (small) delays. */
  faulty = true;
  readonly faults: Record<NetFault, number> = { loss: 0, duplicate: 0, delay: 0, partition: 0, refused: 0 };
  private readonly cut = new Set<string>();

  constructor(
    private readonly time: SimTime,
    private readonly random: Random,
    private readonly profile: NetworkProfile,
    private readonly onBug: BugSink,
  ) {}

  partition(a: string, b: string): void {
    this.cut.add(pairKey(a, b));
  }

  reconnect(a: string, b: string): void {
    this.cut.delete(pairKey(a, b));
  }

  healAll(): void {
    this.faulty = false;
    this.cut.clear();
  }

  get totalFaults(): number {
    return Object.values(this.faults).reduce((a, b) => a + b, 0);
  }

  /** Delivers `fn` at `to` (its incarnation `epoch`) after a network delay: maybe never, maybe twice. */
  send(from: Incarnation, to: Incarnation, epoch: number, label: string, fn: () => void): void {
    if (this.cut.has(pairKey(from.name, to.name))) {
      this.faults.partition++;
      this.time.note(`drop(partition) ${label}`);
      return;
    }
    const p = this.profile;
    if (this.faulty && this.random() < p.lossP) {
      this.faults.loss++;
      this.time.note(`drop(loss) ${label}`);
      return;
    }
    const copies = this.faulty && this.random() < p.duplicateP ? 2 : 1;
    if (copies === 2) this.faults.duplicate++;
    for (let i = 0; i < copies; i++) {
      let delayMs = p.baseDelayMs + Math.floor(this.random() * (p.jitterMs + 1));
      if (this.faulty && this.random() < p.delayP) {
        this.faults.delay++;
        delayMs += Math.floor(this.random() * p.spikeMs);
      }
      this.time.at(delayMs, to, `${to.name}<-${from.name} ${label}`, fn, epoch);
    }
  }

  /**
   * A unary call from `from` to `to`: the request travels, `handle` runs at `to`, the answer (or
   * its error, as a gRPC status) travels back. Rejects with DEADLINE_EXCEEDED after `deadlineMs`
   * and UNAVAILABLE at once when `to` is down.
   */
  call<T>(from: Incarnation, to: Incarnation, path: string, label: string, deadlineMs: number, handle: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const callerEpoch = from.epoch;
      let done = false;
      const finish = (settle: () => void) => {
        if (done) return;
        done = true;
        deadline.cancel();
        settle();
      };
      const deadline = this.time.at(deadlineMs, from, `deadline ${label}`, () =>
        finish(() => reject(clientError(path, Status.DEADLINE_EXCEEDED, `deadline exceeded: ${label}`))));
      if (!to.up) {
        this.faults.refused++;
        this.time.at(1, from, `refused ${label}`, () =>
          finish(() => reject(clientError(path, Status.UNAVAILABLE, `${to.name} is down`))), callerEpoch);
        return;
      }
      this.send(from, to, to.epoch, label, () => {
        let answer: Promise<T>;
        try {
          answer = handle();
        } catch (err) {
          answer = Promise.reject(err);
        }
        answer.then(
          (value) => this.send(to, from, callerEpoch, `re ${label}`, () => finish(() => resolve(value))),
          (err: unknown) => {
            if (isBug(err)) {
              this.onBug(err, to.name);
              return;
            }
            const error = asClientError(path, err);
            this.send(to, from, callerEpoch, `err ${label} ${Status[error.code]}`, () => finish(() => reject(error)));
          },
        );
      });
    });
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

export function isBug(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AssertionError' || err.name === 'SimViolation');
}

/** What the caller would see over gRPC: AppError -> its status; anything else -> INTERNAL. */
function asClientError(path: string, err: unknown): ClientError {
  if (err instanceof ClientError) return err;
  if (err instanceof AppError) return clientError(path, Status[err.code], `${err.reason}: ${err.message}`);
  return clientError(path, Status.INTERNAL, err instanceof Error ? err.message : String(err));
}

/**
 * A gRPC status error as the caller's stub would raise it. Without a stack: in a real process it is
 * made by the gRPC library on the caller's side, so the simulator's own frames would say nothing,
 * and ClientError formats its stack when made (with source maps: 5% of the simulator's time).
 */
function clientError(path: string, code: Status, details: string): ClientError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ClientError(path, code, details);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

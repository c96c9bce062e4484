import { assert } from './assert.js';

// At most `runningMax` tasks at once and at most `queueMax` waiting for a slot; a task beyond both
// is refused at once (the caller answers "busy") instead of queueing without bound.

export class ConcurrencyLimit {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly runningMax: number,
    private readonly queueMax: number,
  ) {
    assert(runningMax >= 1 && queueMax >= 0, `bad concurrency limit ${runningMax}/${queueMax}`);
  }

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `task` when a slot is free; undefined, without running it, if the slots and the queue are full. */
  tryRun<T>(task: () => Promise<T>): Promise<T> | undefined {
    if (this.running < this.runningMax) {
      this.running++;
      return this.runInSlot(task);
    }
    if (this.waiting.length >= this.queueMax) return undefined;
    return new Promise<void>((resolve) => this.waiting.push(resolve)).then(() => this.runInSlot(task));
  }

  private async runInSlot<T>(task: () => Promise<T>): Promise<T> {
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so no newcomer can take it in between.
      if (next) next();
      else this.running--;
    }
  }
}

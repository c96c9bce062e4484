import { errorText } from '../core/errors.js';
import type { Logger } from './logger.js';

// A run of failures of something retried on its own (a periodic sync, a renewal, a shared table),
// logged once: a warning at the first failure, a note when it works again; nothing in between,
// however often it is retried.

export class OutageLog {
  private failing = false;

  constructor(
    private readonly logger: Logger,
    /** The warning at the first failure of a run (the error is added to its fields). */
    private readonly down: string,
    /** The note when it works again. */
    private readonly up: string,
    /** Fields of both lines. */
    private readonly fields: Readonly<Record<string, unknown>> = {},
  ) {}

  /** It worked. */
  ok(): void {
    if (this.failing) this.logger.info(this.up, this.fields);
    this.failing = false;
  }

  /** It failed. */
  failed(err: unknown): void {
    if (!this.failing) this.logger.warn(this.down, { ...this.fields, error: errorText(err) });
    this.failing = true;
  }
}

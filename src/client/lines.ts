import readline from 'node:readline';
import { Writable } from 'node:stream';

// Reads answers line by line from stdin, whether a person types them or a pipe supplies them. One
// reader per process: lines that arrive before anyone asks are queued, never lost (a fresh readline
// per question would drop what the previous one had buffered from a pipe).

export class LineReader {
  private readonly rl: readline.Interface;
  private readonly queued: string[] = [];
  private waiter: ((line: string | undefined) => void) | undefined;
  private ended = false;
  private muted = false;

  constructor(
    input: NodeJS.ReadableStream,
    /** Where prompts go (stdout for the interactive menu, stderr for subcommands). */
    private readonly output: NodeJS.WritableStream,
    private readonly terminal: boolean,
  ) {
    // Echo of typed characters passes through here, so a secret can be read without showing it.
    const echo = new Writable({
      write: (chunk: Buffer | string, _enc, done) => {
        if (!this.muted) output.write(chunk);
        done();
      },
    });
    this.rl = readline.createInterface({ input, output: echo, terminal });
    this.rl.on('line', (line) => this.push(line));
    this.rl.on('close', () => {
      this.ended = true;
      this.flushWaiter(undefined);
    });
  }

  /** Asks and waits for one line; undefined when input has ended. */
  async question(prompt: string): Promise<string | undefined> {
    this.showPrompt(prompt);
    const line = await this.next();
    // A terminal echoes the answer itself; for piped input, echo it so the transcript reads well.
    if (!this.terminal) this.output.write(`${line ?? ''}\n`);
    return line;
  }

  /** Like question, but a terminal does not echo what is typed. */
  async secret(prompt: string): Promise<string | undefined> {
    this.showPrompt(prompt);
    this.muted = this.terminal;
    try {
      return await this.next();
    } finally {
      this.muted = false;
      this.output.write('\n');
    }
  }

  /** Reads one line with no prompt and no echo (e.g. a password piped in with --password-stdin). */
  async read(): Promise<string | undefined> {
    this.muted = this.terminal;
    try {
      return await this.next();
    } finally {
      this.muted = false;
    }
  }

  close(): void {
    this.rl.close();
  }

  private showPrompt(prompt: string): void {
    if (this.terminal) {
      this.rl.setPrompt(prompt);
      this.rl.prompt();
    } else {
      this.output.write(prompt);
    }
  }

  private next(): Promise<string | undefined> {
    const line = this.queued.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  private push(line: string): void {
    const text = line.replace(/\r$/, '');
    if (this.waiter) this.flushWaiter(text);
    else this.queued.push(text);
  }

  private flushWaiter(line: string | undefined): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.(line);
  }
}

import { systemClock } from '../core/clock.js';
import type { Config } from '../config/schema.js';
import { toJson } from '../core/json.js';
import { closeLogger, createLogger, type Logger } from '../logging/logger.js';
import { loadTls, type TlsMaterial } from '../tls/credentials.js';
import { ClientFailure, CLIENT_REASONS, configFailure } from './failure.js';
import { GatewayClient } from './gateway-client.js';
import { LineReader } from './lines.js';
import { Outbox } from './outbox.js';
import { OutboxWorker, type OutboxEvent } from './outbox-worker.js';
import { SessionStore, type Session } from './session.js';

// Everything one CLI run shares: config, output mode, the stored session, and (created on first use)
// the gateway client, its logger and the stdin line reader. close() releases all of them.

export interface CliIo {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

/** Token failures after which the stored session is useless. */
const DEAD_TOKEN_REASONS: ReadonlySet<string> = new Set(['TOKEN_EXPIRED', 'TOKEN_REVOKED', 'TOKEN_INVALID']);

/** One line on stderr, or with --json the error object on stdout (so stdout is always one JSON document). */
export function writeError(io: CliIo, json: boolean, failure: ClientFailure): void {
  if (json) io.stdout.write(`${toJson({ error: failure.toJSON() })}\n`);
  else io.stderr.write(`error: ${failure.message} (${failure.reason})\n`);
}

export const SESSION_EXPIRED_MESSAGE = 'session expired, log in again';

export class CliContext {
  readonly sessions: SessionStore;
  private gatewayClient: GatewayClient | undefined;
  private logger: Logger | undefined;
  private lineReader: LineReader | undefined;
  private outboxStore: Outbox | undefined;

  constructor(
    readonly io: CliIo,
    readonly config: Config,
    /** Machine-readable output on stdout. */
    readonly json: boolean,
    /** Where the gateway is dialed (--gateway or client.gatewayAddress). */
    readonly address: string,
  ) {
    this.sessions = SessionStore.fromConfig(config);
  }

  get stdinIsTerminal(): boolean {
    return this.io.stdin.isTTY === true;
  }

  gateway(): GatewayClient {
    if (!this.gatewayClient) {
      // The CLI's own output is its user interface; call logs go to the log file only.
      let tls: TlsMaterial;
      try {
        tls = loadTls(this.config.tls.dir, 'client');
      } catch (err) {
        throw configFailure((err as Error).message);
      }
      this.logger = createLogger({ node: 'client', dir: this.config.logging.dir, level: this.config.logging.level, console: false,
        fieldMaxChars: this.config.logging.fieldMaxChars });
      this.gatewayClient = new GatewayClient({ address: this.address, tls, limits: { ...this.config.client, ...this.config.grpc }, logger: this.logger });
    }
    return this.gatewayClient;
  }

  /** The one stdin reader of this run; prompts go to `promptTo`. */
  lines(promptTo: NodeJS.WritableStream): LineReader {
    this.lineReader ??= new LineReader(this.io.stdin, promptTo, this.stdinIsTerminal);
    return this.lineReader;
  }

  /** Prints a result: the JSON value with --json, else the human text. */
  print(human: string, json: unknown): void {
    this.io.stdout.write(this.json ? `${toJson(json)}\n` : `${human}\n`);
  }

  /** Human-only progress text (suppressed with --json so stdout stays one JSON document). */
  note(text: string): void {
    if (!this.json) this.io.stdout.write(`${text}\n`);
  }

  printError(failure: ClientFailure): void {
    writeError(this.io, this.json, failure);
  }

  /** The stored session, or a failure saying how to get one. Removes a session that cannot be used. */
  requireSession(): Session {
    const loaded = this.sessions.load();
    switch (loaded.kind) {
      case 'ok':
        return loaded.session;
      case 'none':
        throw new ClientFailure('UNAUTHENTICATED', CLIENT_REASONS.NOT_LOGGED_IN, 'not logged in: run bin/client login BANK USER');
      case 'expired':
        this.sessions.clear();
        throw new ClientFailure('UNAUTHENTICATED', CLIENT_REASONS.SESSION_EXPIRED, SESSION_EXPIRED_MESSAGE);
      case 'unreadable':
        this.sessions.clear();
        throw new ClientFailure('UNAUTHENTICATED', CLIENT_REASONS.SESSION_UNREADABLE, `${loaded.message}; log in again`);
    }
  }

  /** Runs a protected call with the stored session's token; a dead token ends the session. */
  async authed<T>(fn: (gateway: GatewayClient, session: Session) => Promise<T>): Promise<T> {
    const session = this.requireSession();
    const gateway = this.gateway();
    gateway.setToken(session.token);
    try {
      return await fn(gateway, session);
    } catch (err) {
      if (err instanceof ClientFailure && err.code === 'UNAUTHENTICATED' && DEAD_TOKEN_REASONS.has(err.reason)) {
        this.sessions.clear();
        if (err.reason === 'TOKEN_EXPIRED') throw err.withMessage(SESSION_EXPIRED_MESSAGE);
        throw err.withMessage(`${err.message}; log in again`);
      }
      throw err;
    }
  }

  /** The offline outbox in the data folder (created on first use). */
  outbox(): Outbox {
    this.outboxStore ??= Outbox.open(this.sessions.dir, this.config.client);
    return this.outboxStore;
  }

  /** The outbox if one exists already (read-only commands do not create it). */
  existingOutbox(): Outbox | undefined {
    this.outboxStore ??= Outbox.openExisting(this.sessions.dir, this.config.client);
    return this.outboxStore;
  }

  /** A worker sending this data folder's outbox with the stored session. */
  outboxWorker(onEvent?: (event: OutboxEvent) => void): OutboxWorker {
    const delay = Number(this.io.env.PAYMENTS_CLIENT_TEST_OUTBOX_DELAY_MS ?? 0);
    return new OutboxWorker({
      outbox: this.outbox(),
      gateway: () => this.gateway(),
      session: () => {
        const loaded = this.sessions.load();
        if (loaded.kind === 'ok') return loaded.session;
        if (loaded.kind === 'expired') this.sessions.clear();
        return undefined;
      },
      dropSession: () => this.sessions.clear(),
      limits: this.config.client,
      clock: systemClock,
      ...(onEvent ? { onEvent } : {}),
      ...(Number.isInteger(delay) && delay > 0 ? { testDelayAfterSendMs: delay } : {}),
    });
  }

  async close(): Promise<void> {
    this.outboxStore?.close();
    this.lineReader?.close();
    this.gatewayClient?.close();
    if (this.logger) await closeLogger(this.logger);
  }
}

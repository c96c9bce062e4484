import fs from 'node:fs';
import path from 'node:path';
import winston from 'winston';
import { clip } from '../core/clip.js';

// One logger per node: console (human) plus a JSON-lines file (logs/<node>.log).
// Secrets never reach a transport: the redact format drops them whatever the caller passed. No
// line grows with a caller's input either: every string value is cut to fieldMaxChars (its
// original length noted); values from callers are already cut where they are echoed.

export type Logger = winston.Logger;

export interface LoggerOptions {
  node: string;
  dir: string;
  level: 'error' | 'warn' | 'info' | 'debug';
  console: boolean;
  /** Longest string value in a line (config logging.fieldMaxChars). */
  fieldMaxChars: number;
}

const SECRET_KEYS = new Set(['password', 'token', 'accesstoken', 'access_token', 'authorization', 'secret', 'privatekey']);

function redactValue(value: unknown, depth: number, maxChars: number): unknown {
  if (typeof value === 'string') return clip(value, maxChars);
  if (depth > 4 || value === null || typeof value !== 'object') {
    return typeof value === 'bigint' ? value.toString() : value;
  }
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, maxChars));
  if (value instanceof Error) return { name: value.name, message: clip(value.message, maxChars) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEYS.has(k.toLowerCase()) ? '[redacted]' : redactValue(v, depth + 1, maxChars);
  }
  return out;
}

/**
 * Meta flag of hot-path lines (one per transfer): they go to the log file only, because writing to
 * a console (a TTY or pipe) is synchronous in Node and would stall the event loop.
 */
export const FILE_ONLY = 'fileOnly';

const notFileOnly = winston.format((info) => (info[FILE_ONLY] ? false : info));
const dropFileOnlyFlag = winston.format((info) => {
  delete info[FILE_ONLY];
  return info;
});

function redact(maxChars: number): winston.Logform.Format {
  return winston.format((info) => {
    for (const key of Object.keys(info)) {
      if (SECRET_KEYS.has(key.toLowerCase())) info[key] = '[redacted]';
      else info[key] = redactValue(info[key], 0, maxChars);
    }
    return info;
  })();
}

export function createLogger(options: LoggerOptions): Logger {
  fs.mkdirSync(options.dir, { recursive: true });
  const transports: winston.transport[] = [
    new winston.transports.File({
      filename: path.join(options.dir, `${options.node}.log`),
      format: winston.format.combine(dropFileOnlyFlag(), winston.format.timestamp(), winston.format.json()),
    }),
  ];
  if (options.console) {
    transports.push(
      new winston.transports.Console({
        stderrLevels: ['error', 'warn', 'info', 'debug'],
        format: winston.format.combine(
          notFileOnly(),
          winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
          winston.format.printf(({ timestamp, level, message, node: _n, ...rest }) => {
            const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
            return `${String(timestamp)} ${options.node} ${level}: ${String(message)}${extra}`;
          }),
        ),
      }),
    );
  }
  return winston.createLogger({
    level: options.level,
    defaultMeta: { node: options.node },
    format: redact(options.fieldMaxChars),
    transports,
  });
}

/** Flushes file transports; call before exit. */
export async function closeLogger(logger: Logger): Promise<void> {
  await new Promise<void>((resolve) => {
    logger.on('finish', () => resolve());
    logger.end();
    setTimeout(resolve, 1000).unref();
  });
}

/** A logger that writes nothing (tests of pure code, CLI without logging). */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}

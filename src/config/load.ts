import fs from 'node:fs';
import path from 'node:path';
import { ConfigSchema, type Config } from './schema.js';

// Layers, later wins: config.json < environment (PAYMENTS__SECTION__KEY=value) < flags (--set a.b=v).

export const ENV_PREFIX = 'PAYMENTS__';
export const DEFAULT_CONFIG_PATH = 'config.json';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadOptions {
  /** Path of config.json; defaults to $PAYMENTS_CONFIG or ./config.json. A missing default file is allowed. */
  path?: string;
  /** `a.b.c=value` assignments from the command line. */
  sets?: readonly string[];
  env?: NodeJS.ProcessEnv;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function parseValue(text: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch {
    return text;
  }
}

/** Finds the key at this level that matches `segment` case-insensitively (env vars are upper case). */
function matchKey(obj: Record<string, Json>, segment: string, knownKeys: readonly string[]): string {
  const all = [...Object.keys(obj), ...knownKeys];
  return all.find((k) => k.toLowerCase() === segment.toLowerCase()) ?? segment;
}

const KNOWN_KEYS = collectKeys(ConfigSchema.parse({}));

function collectKeys(value: unknown, out = new Set<string>()): string[] {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) {
      out.add(k);
      collectKeys(v, out);
    }
  }
  // Fields without a default (absent from the parsed defaults) that env variables may still set.
  return [...out, 'host', 'port', 'dataDir', 'address', 'metricsPort'];
}

function assign(root: Record<string, Json>, dotted: string[], value: Json): void {
  let obj = root;
  dotted.forEach((segment, i) => {
    const key = matchKey(obj, segment, KNOWN_KEYS);
    if (i === dotted.length - 1) {
      obj[key] = value;
      return;
    }
    const next = obj[key];
    if (!next || typeof next !== 'object' || Array.isArray(next)) obj[key] = {};
    obj = obj[key] as Record<string, Json>;
  });
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const explicit = options.path ?? env.PAYMENTS_CONFIG;
  const file = path.resolve(explicit ?? DEFAULT_CONFIG_PATH);
  let raw: Record<string, Json> = {};
  if (fs.existsSync(file)) {
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, Json>;
    } catch (err) {
      throw new ConfigError(`${file}: not valid JSON (${(err as Error).message})`);
    }
  } else if (explicit) {
    throw new ConfigError(`${file}: no such file`);
  }
  for (const [k, v] of Object.entries(env)) {
    if (!k.startsWith(ENV_PREFIX) || v === undefined) continue;
    assign(raw, k.slice(ENV_PREFIX.length).split('__').filter(Boolean), parseValue(v));
  }
  for (const set of options.sets ?? []) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set ${set}: expected key.path=value`);
    assign(raw, set.slice(0, eq).split('.'), parseValue(set.slice(eq + 1)));
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration (${file}):\n${lines.join('\n')}`);
  }
  return parsed.data;
}

/** For bin/ entry points: report a bad config by field name and exit non-zero. */
export function loadConfigOrExit(options: LoadOptions = {}): Config {
  try {
    return loadConfig(options);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`config error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

import fs from 'node:fs';
import path from 'node:path';
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
} from 'jose';

// The gateway's token signing key: an Ed25519 pair made at first start and kept in the gateway's
// data folder as a private JWK (mode 0600). Nothing secret lives in config.json; anyone who needs
// to check tokens gets the public half as a JWKS.

export const TOKEN_ALG = 'EdDSA';
export const SIGNING_KEY_FILE = 'token-signing-key.jwk';
/** Owner read/write only: the file holds the private key. */
export const SIGNING_KEY_FILE_MODE = 0o600;

export interface SigningKey {
  /** Key id (RFC 7638 thumbprint of the public key), put in every token header. */
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Public JWK with kid, alg and use: what a JWKS publishes. */
  readonly publicJwk: JWK;
}

export function signingKeyPath(dataDir: string): string {
  return path.join(dataDir, SIGNING_KEY_FILE);
}

/** Loads the signing key from dataDir, creating it on first start. */
export async function loadOrCreateSigningKey(dataDir: string): Promise<SigningKey> {
  const file = signingKeyPath(dataDir);
  if (!fs.existsSync(file)) await createKeyFile(dataDir, file);
  return readKeyFile(file);
}

/** The public half as a JSON Web Key Set, for other nodes (e.g. published through Consul). */
export function publicJwks(key: SigningKey, previous: readonly RetiredKey[] = []): JSONWebKeySet {
  return { keys: [key.publicJwk, ...previous.map((k) => k.publicJwk)] };
}

// Rotation. The current key signs; a rotated-out key keeps only its public half, in
// PREVIOUS_KEYS_FILE, with the time until which tokens it signed still verify (rotation time +
// token TTL: no token it signed can live longer). Its private half is gone with the old key file.

export const PREVIOUS_KEYS_FILE = 'token-verify-keys-previous.json';

export interface RetiredKey {
  readonly kid: string;
  readonly publicKey: CryptoKey;
  readonly publicJwk: JWK;
  /** Tokens with this kid verify until then (ms since epoch). */
  readonly verifyUntilMs: number;
}

export interface KeySet {
  readonly current: SigningKey;
  /** Rotated-out keys still inside their verification window. */
  readonly previous: readonly RetiredKey[];
}

interface StoredRetiredKey extends JWK {
  verifyUntilMs: number;
}

/** The current key (created at first start) and the still-valid rotated-out keys. */
export async function loadKeySet(dataDir: string, nowMs: number = Date.now()): Promise<KeySet> {
  const current = await loadOrCreateSigningKey(dataDir);
  const previous: RetiredKey[] = [];
  for (const stored of readPreviousFile(dataDir)) {
    if (stored.verifyUntilMs <= nowMs || stored.kid === current.kid) continue;
    const pub = publicPart(stored);
    previous.push({
      kid: stored.kid!,
      publicKey: (await importJWK(pub, TOKEN_ALG)) as CryptoKey,
      publicJwk: { ...pub, kid: stored.kid, alg: TOKEN_ALG, use: 'sig' },
      verifyUntilMs: stored.verifyUntilMs,
    });
  }
  return { current, previous };
}

/**
 * Replaces the signing key with a new one; the old key's public half keeps verifying its tokens
 * for ttlSeconds. Crash-safe: the retired key is recorded (fsynced) before the key file is
 * replaced (atomic rename), so a crash in between leaves the old key current and also listed.
 */
export async function rotateSigningKey(
  dataDir: string,
  options: { ttlSeconds: number; nowMs?: number },
): Promise<{ retiredKid: string; kid: string }> {
  const nowMs = options.nowMs ?? Date.now();
  const old = await loadOrCreateSigningKey(dataDir);
  const kept = readPreviousFile(dataDir).filter((k) => k.verifyUntilMs > nowMs && k.kid !== old.kid);
  const retired: StoredRetiredKey = { ...old.publicJwk, verifyUntilMs: nowMs + options.ttlSeconds * 1000 };
  writeFileAtomic(dataDir, path.join(dataDir, PREVIOUS_KEYS_FILE), `${JSON.stringify({ keys: [...kept, retired] }, null, 2)}\n`, 0o644);
  const text = await newKeyText();
  writeFileAtomic(dataDir, signingKeyPath(dataDir), text, SIGNING_KEY_FILE_MODE);
  const next = await readKeyFile(signingKeyPath(dataDir));
  return { retiredKid: old.kid, kid: next.kid };
}

function readPreviousFile(dataDir: string): StoredRetiredKey[] {
  const file = path.join(dataDir, PREVIOUS_KEYS_FILE);
  if (!fs.existsSync(file)) return [];
  let parsed: { keys?: unknown };
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { keys?: unknown };
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const keys = Array.isArray(parsed.keys) ? (parsed.keys as StoredRetiredKey[]) : [];
  for (const k of keys) {
    if (k.kty !== 'OKP' || k.crv !== 'Ed25519' || typeof k.x !== 'string' || typeof k.kid !== 'string' || typeof k.verifyUntilMs !== 'number') {
      throw new Error(`${file}: expected public Ed25519 JWKs with kid and verifyUntilMs`);
    }
  }
  return keys;
}

/** Writes `text` to `<file>.<pid>.tmp` with `mode` and fsyncs it; returns the temp file's path. */
function writePrivateTempFile(file: string, text: string, mode: number): string {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return tmp;
}

/** Writes a private temp file, fsyncs it, renames it over `file` and fsyncs the folder. */
function writeFileAtomic(dir: string, file: string, text: string, mode: number): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.renameSync(writePrivateTempFile(file, text, mode), file);
  fsyncDir(dir);
}

async function newKeyText(): Promise<string> {
  const pair = await generateKeyPair(TOKEN_ALG, { crv: 'Ed25519', extractable: true });
  const jwk = await exportJWK(pair.privateKey);
  const kid = await calculateJwkThumbprint(publicPart(jwk));
  return `${JSON.stringify({ ...jwk, kid, alg: TOKEN_ALG, use: 'sig' }, null, 2)}\n`;
}

async function createKeyFile(dataDir: string, file: string): Promise<void> {
  fs.mkdirSync(dataDir, { recursive: true });
  const text = await newKeyText();
  // Write to a private temp file, flush, then link it into place: the key file appears whole or
  // not at all, and if another process created one meanwhile, theirs wins (link never overwrites).
  const tmp = writePrivateTempFile(file, text, SIGNING_KEY_FILE_MODE);
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.unlinkSync(tmp);
  }
  fsyncDir(dataDir);
}

async function readKeyFile(file: string): Promise<SigningKey> {
  const mode = fs.statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new Error(`${file} is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${file}`);
  }
  let jwk: JWK;
  try {
    jwk = JSON.parse(fs.readFileSync(file, 'utf8')) as JWK;
  } catch (err) {
    throw new Error(`${file}: not a JSON Web Key (${(err as Error).message})`);
  }
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string' || typeof jwk.kid !== 'string') {
    throw new Error(`${file}: expected a private Ed25519 JWK with a kid`);
  }
  const pub = publicPart(jwk);
  const privateKey = (await importJWK(jwk, TOKEN_ALG)) as CryptoKey;
  const publicKey = (await importJWK(pub, TOKEN_ALG)) as CryptoKey;
  return { kid: jwk.kid, privateKey, publicKey, publicJwk: { ...pub, kid: jwk.kid, alg: TOKEN_ALG, use: 'sig' } };
}

/** The members of an OKP JWK that make up its public key (nothing else, so `d` never leaks). */
function publicPart(jwk: JWK): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

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
export function publicJwks(key: SigningKey): JSONWebKeySet {
  return { keys: [key.publicJwk] };
}

async function createKeyFile(dataDir: string, file: string): Promise<void> {
  fs.mkdirSync(dataDir, { recursive: true });
  const pair = await generateKeyPair(TOKEN_ALG, { crv: 'Ed25519', extractable: true });
  const jwk = await exportJWK(pair.privateKey);
  const kid = await calculateJwkThumbprint(publicPart(jwk));
  const text = `${JSON.stringify({ ...jwk, kid, alg: TOKEN_ALG, use: 'sig' }, null, 2)}\n`;
  // Write to a private temp file, flush, then link it into place: the key file appears whole or
  // not at all, and if another process created one meanwhile, theirs wins (link never overwrites).
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', SIGNING_KEY_FILE_MODE);
  try {
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
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

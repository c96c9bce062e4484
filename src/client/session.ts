import { createCipheriv, createDecipheriv, createPrivateKey, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { tlsPaths } from '../tls/credentials.js';
import { configFailure } from './failure.js';
import type { AccountInfo } from './types.js';

// The logged-in session, kept between CLI runs in the client data folder (mode 0700, file 0600).
//
// The access token is never written in clear: it is encrypted with AES-256-GCM under a key derived
// with HKDF-SHA256 from the client's TLS private key (tls.dir/client.key) and a random per-file salt.
// Whoever can read the session file but not the private key cannot use the token. The account and
// expiry are stored in clear (the CLI shows them) but bound to the ciphertext as GCM associated data,
// so they cannot be altered without the file failing to decrypt.

export const SESSION_FILE = 'session.json';
const FORMAT_VERSION = 1;
const HKDF_INFO = 'payments-client session token v1';
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const IV_BYTES = 12;

export interface Session {
  readonly token: string;
  readonly account: AccountInfo;
  readonly expiresAtMs: number;
}

export type SessionLoad =
  | { kind: 'none' }
  | { kind: 'ok'; session: Session }
  | { kind: 'expired'; account: AccountInfo }
  /** The file exists but cannot be used (corrupt, tampered, or the TLS key changed). */
  | { kind: 'unreadable'; message: string };

interface SessionFile {
  version: number;
  account: AccountInfo;
  expiresAtMs: number;
  salt: string;
  iv: string;
  tag: string;
  ciphertext: string;
}

/** Expands a leading "~" to the home folder and resolves relative paths against the working folder. */
export function resolveDataDir(dir: string, home: string = os.homedir()): string {
  if (dir === '~') return home;
  if (dir.startsWith('~/')) return path.join(home, dir.slice(2));
  return path.resolve(dir);
}

export class SessionStore {
  readonly file: string;

  constructor(
    readonly dir: string,
    /** PEM private key the encryption key is derived from. */
    private readonly keyFile: string,
  ) {
    this.file = path.join(dir, SESSION_FILE);
  }

  static fromConfig(config: Config, home?: string): SessionStore {
    return new SessionStore(resolveDataDir(config.client.dataDir, home), tlsPaths(config.tls.dir, 'client').key);
  }

  save(session: Session): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const salt = randomBytes(SALT_BYTES);
    const iv = randomBytes(IV_BYTES);
    const { bank, username, currency } = session.account;
    const header = { version: FORMAT_VERSION, account: { bank, username, currency }, expiresAtMs: session.expiresAtMs };
    const cipher = createCipheriv('aes-256-gcm', this.deriveKey(salt), iv);
    cipher.setAAD(associatedData(header));
    const ciphertext = Buffer.concat([cipher.update(session.token, 'utf8'), cipher.final()]);
    const body: SessionFile = {
      ...header,
      salt: salt.toString('base64'),
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      ciphertext: ciphertext.toString('base64'),
    };
    // Write a fresh 0600 file and rename it over the old one: readers never see half a file, and the
    // mode applies even when an older file had looser permissions.
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, this.file);
  }

  load(nowMs: number = Date.now()): SessionLoad {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
      throw err;
    }
    let body: SessionFile;
    try {
      body = JSON.parse(text) as SessionFile;
    } catch {
      return { kind: 'unreadable', message: `${this.file} is not valid JSON` };
    }
    if (body.version !== FORMAT_VERSION || !isAccount(body.account) || typeof body.expiresAtMs !== 'number') {
      return { kind: 'unreadable', message: `${this.file} has an unknown format` };
    }
    if (nowMs >= body.expiresAtMs) return { kind: 'expired', account: body.account };
    if (typeof body.salt !== 'string' || typeof body.iv !== 'string' || typeof body.tag !== 'string' || typeof body.ciphertext !== 'string') {
      return { kind: 'unreadable', message: `${this.file} has an unknown format` };
    }
    // Outside the try below: a missing key file is a setup problem, not a reason to drop the session.
    const key = this.deriveKey(Buffer.from(body.salt, 'base64'));
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(body.iv, 'base64'));
      decipher.setAAD(associatedData({ version: body.version, account: body.account, expiresAtMs: body.expiresAtMs }));
      decipher.setAuthTag(Buffer.from(body.tag, 'base64'));
      const token = Buffer.concat([decipher.update(Buffer.from(body.ciphertext, 'base64')), decipher.final()]).toString('utf8');
      return { kind: 'ok', session: { token, account: body.account, expiresAtMs: body.expiresAtMs } };
    } catch {
      return { kind: 'unreadable', message: 'the stored session cannot be decrypted (tampered, or the client key changed)' };
    }
  }

  clear(): void {
    fs.rmSync(this.file, { force: true });
  }

  private deriveKey(salt: Buffer): Buffer {
    // The key's DER encoding, not the PEM text: the same key always derives the same secret.
    let der: Buffer;
    try {
      der = createPrivateKey(fs.readFileSync(this.keyFile)).export({ format: 'der', type: 'pkcs8' });
    } catch (err) {
      throw configFailure(`cannot read the client TLS key ${this.keyFile} (it encrypts the session): ${(err as Error).message}`);
    }
    return Buffer.from(hkdfSync('sha256', der, salt, HKDF_INFO, KEY_BYTES));
  }
}

function associatedData(header: { version: number; account: AccountInfo; expiresAtMs: number }): Buffer {
  const { bank, username, currency } = header.account;
  return Buffer.from(JSON.stringify([header.version, bank, username, currency, header.expiresAtMs]), 'utf8');
}

function isAccount(value: unknown): value is AccountInfo {
  if (!value || typeof value !== 'object') return false;
  const a = value as Record<string, unknown>;
  return typeof a.bank === 'string' && typeof a.username === 'string' && typeof a.currency === 'string';
}

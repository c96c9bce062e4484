import { expect } from 'chai';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClientFailure } from '../../src/client/failure.js';
import { resolveDataDir, SESSION_FILE, SessionStore, type Session } from '../../src/client/session.js';

// The stored session: token encrypted at rest (AES-256-GCM, key from the client TLS key via HKDF),
// owner-only permissions, tamper detection, expiry.

function writeKey(file: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  fs.writeFileSync(file, privateKey.export({ format: 'pem', type: 'sec1' }), { mode: 0o600 });
}

describe('client session store', () => {
  let dir: string;
  let keyFile: string;
  const token = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJCYW5rQS9hbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz';
  const session = (expiresAtMs = Date.now() + 60_000): Session =>
    ({ token, account: { bank: 'BankA', username: 'alice', currency: 'EUR' }, expiresAtMs });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'client-session-'));
    keyFile = path.join(dir, 'client.key');
    writeKey(keyFile);
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('stores the token encrypted, in a 0600 file inside a 0700 folder, and decrypts it back', () => {
    const store = new SessionStore(path.join(dir, 'data', 'nested'), keyFile);
    const s = session();
    store.save(s);
    const raw = fs.readFileSync(store.file);
    expect(raw.includes(Buffer.from(token))).to.equal(false);
    for (const part of token.split('.')) expect(raw.includes(Buffer.from(part))).to.equal(false);
    expect(raw.includes(Buffer.from(Buffer.from(token).toString('base64')))).to.equal(false);
    expect(fs.statSync(store.file).mode & 0o777).to.equal(0o600);
    expect(fs.statSync(store.dir).mode & 0o777).to.equal(0o700);
    expect(store.load()).to.deep.equal({ kind: 'ok', session: s });
  });

  it('uses a fresh salt and IV each time: two saves of one token differ', () => {
    const store = new SessionStore(dir, keyFile);
    store.save(session(1_900_000_000_000));
    const first = fs.readFileSync(store.file, 'utf8');
    store.save(session(1_900_000_000_000));
    expect(fs.readFileSync(store.file, 'utf8')).to.not.equal(first);
  });

  it('reports none, expired, and clears', () => {
    const store = new SessionStore(dir, keyFile);
    expect(store.load()).to.deep.equal({ kind: 'none' });
    store.save(session(1000));
    expect(store.load(999).kind).to.equal('ok');
    expect(store.load(1000)).to.deep.equal({ kind: 'expired', account: { bank: 'BankA', username: 'alice', currency: 'EUR' } });
    store.clear();
    expect(fs.existsSync(store.file)).to.equal(false);
    store.clear();
  });

  it('refuses a file whose clear fields were altered (extending the expiry)', () => {
    const store = new SessionStore(dir, keyFile);
    store.save(session(Date.now() + 1000));
    const body = JSON.parse(fs.readFileSync(store.file, 'utf8'));
    body.expiresAtMs += 3_600_000;
    fs.writeFileSync(store.file, JSON.stringify(body));
    expect(store.load().kind).to.equal('unreadable');
  });

  it('cannot be decrypted with another client key', () => {
    new SessionStore(dir, keyFile).save(session());
    const otherKey = path.join(dir, 'other.key');
    writeKey(otherKey);
    const load = new SessionStore(dir, otherKey).load();
    expect(load.kind).to.equal('unreadable');
  });

  it('reports garbage as unreadable, and a missing key file as a setup failure that keeps the session', () => {
    const store = new SessionStore(dir, keyFile);
    fs.writeFileSync(path.join(dir, SESSION_FILE), 'not json');
    expect(store.load().kind).to.equal('unreadable');
    store.save(session());
    const missing = new SessionStore(dir, path.join(dir, 'nope.key'));
    expect(() => missing.load()).to.throw(ClientFailure).with.property('reason', 'CONFIG');
    expect(fs.existsSync(store.file)).to.equal(true);
  });

  it('expands "~" to the home folder', () => {
    expect(resolveDataDir('~/.payments-client', '/home/u')).to.equal('/home/u/.payments-client');
    expect(resolveDataDir('~', '/home/u')).to.equal('/home/u');
    expect(resolveDataDir('/abs/dir', '/home/u')).to.equal('/abs/dir');
    expect(resolveDataDir('rel', '/home/u')).to.equal(path.resolve('rel'));
  });
});

import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import type { Result } from '../../src/core/errors.js';
import type { Identity } from '../../src/core/transfer.js';
import { PREVIOUS_KEYS_FILE, rotateSigningKey } from '../../src/gateway/token-keys.js';
import { TOKEN_AUDIENCE, TOKEN_ISSUER, Tokens, verifyWithJwks } from '../../src/gateway/tokens.js';
import { DEFAULT_CONFIG } from '../helpers/clock.js';

/** The configured bound of remembered verified tokens. */
const VERIFIED_MAX = DEFAULT_CONFIG.gateway.verifiedTokensMax;

// Signing key rotation: new tokens carry the new kid; tokens of the rotated-out key verify until
// they expire (the key's window is the token TTL); a kid nobody knows is TOKEN_INVALID.

const TTL_SECONDS = 600;
const ALICE = { bank: 'BankA', username: 'alice' };
const reason = (r: Result<Identity>) => (r.ok ? 'OK' : r.reason);

describe('token signing key rotation', () => {
  const dirs: string[] = [];
  const newDir = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'token-rotation-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('signs new tokens with the new kid; old tokens verify until they expire, then the old key is gone', async () => {
    const dir = newDir();
    let now = 1_700_000_000_000;
    const clock = { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS, now: () => now };
    const before = await Tokens.open(dir, clock);
    const oldToken = (await before.issue(ALICE)).token;
    const oldKid = before.key.kid;

    now += 60_000;
    const rotated = await rotateSigningKey(dir, { ttlSeconds: TTL_SECONDS, nowMs: now });
    expect(rotated.retiredKid).to.equal(oldKid);
    expect(rotated.kid).to.not.equal(oldKid);

    const after = await Tokens.open(dir, clock);
    expect(after.key.kid).to.equal(rotated.kid);
    const newToken = (await after.issue(ALICE)).token;
    expect(decodeProtectedHeader(newToken).kid).to.equal(rotated.kid);
    expect(reason(await after.verify(newToken))).to.equal('OK');
    expect(reason(await after.verify(oldToken))).to.equal('OK');
    expect(after.jwks().keys.map((k) => k.kid)).to.deep.equal([rotated.kid, oldKid]);

    // The old token's own expiry still applies ...
    now += (TTL_SECONDS - 60) * 1000 + 1000;
    expect(reason(await after.verify(oldToken))).to.equal('TOKEN_EXPIRED');
    // ... and once no token of the old key can be alive, the key is dropped.
    now += 60_000;
    expect(after.jwks().keys.map((k) => k.kid)).to.deep.equal([rotated.kid]);
    const reopened = await Tokens.open(dir, clock);
    expect(reopened.previous).to.have.length(0);
  });

  it('keeps the private half of a rotated-out key nowhere', async () => {
    const dir = newDir();
    await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    await rotateSigningKey(dir, { ttlSeconds: TTL_SECONDS });
    const stored = JSON.parse(fs.readFileSync(path.join(dir, PREVIOUS_KEYS_FILE), 'utf8')) as { keys: Record<string, unknown>[] };
    expect(stored.keys).to.have.length(1);
    expect(stored.keys[0]).to.not.have.property('d');
    expect(stored.keys[0]).to.include.keys(['kid', 'x', 'verifyUntilMs']);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
  });

  it('keeps every rotated-out key inside its window across several rotations', async () => {
    const dir = newDir();
    const first = await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const t1 = (await first.issue(ALICE)).token;
    await rotateSigningKey(dir, { ttlSeconds: TTL_SECONDS });
    const second = await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const t2 = (await second.issue(ALICE)).token;
    await rotateSigningKey(dir, { ttlSeconds: TTL_SECONDS });
    const third = await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    expect(new Set([first.key.kid, second.key.kid, third.key.kid]).size).to.equal(3);
    expect(reason(await third.verify(t1))).to.equal('OK');
    expect(reason(await third.verify(t2))).to.equal('OK');
    expect((await verifyWithJwks(t1, third.jwks())).ok).to.equal(true);
  });

  it('refuses a token whose kid names no key, with TOKEN_INVALID', async () => {
    const dir = newDir();
    const tokens = await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const exp = Math.floor(Date.now() / 1000) + 300;
    const sign = (kid: string, key: CryptoKey) =>
      new SignJWT({ bank: 'BankA', username: 'alice' }).setProtectedHeader({ alg: 'EdDSA', kid }).setSubject('BankA/alice')
        .setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setJti('j').setExpirationTime(exp).sign(key);
    // Our own key, but a kid we never issued.
    expect(reason(await tokens.verify(await sign('no-such-kid', tokens.key.privateKey)))).to.equal('TOKEN_INVALID');
    expect(reason(await verifyWithJwks(await sign('no-such-kid', tokens.key.privateKey), tokens.jwks()))).to.equal('TOKEN_INVALID');
    // A foreign key claiming our kid.
    const foreign = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    expect(reason(await tokens.verify(await sign(tokens.key.kid, foreign.privateKey)))).to.equal('TOKEN_INVALID');
    // A key rotated out long ago (outside its window) is unknown too.
    let now = Date.now();
    const clock = { verifiedMax: VERIFIED_MAX, ttlSeconds: 1, now: () => now };
    const dir2 = newDir();
    const old = await Tokens.open(dir2, clock);
    const oldToken = (await old.issue(ALICE)).token;
    await rotateSigningKey(dir2, { ttlSeconds: 1, nowMs: now });
    now += 5_000;
    const current = await Tokens.open(dir2, { verifiedMax: VERIFIED_MAX, ttlSeconds: 3600, now: () => now });
    // (Its own exp has passed as well, but the key lookup fails first: no key for that kid.)
    expect(reason(await current.verify(oldToken))).to.equal('TOKEN_INVALID');
  });
});

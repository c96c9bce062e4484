import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { base64url, SignJWT, UnsecuredJWT } from 'jose';
import { ClientError, Metadata, Status } from 'nice-grpc';
import { HealthDefinition, HealthServiceImpl, HealthState } from 'nice-grpc-server-health';
import type { Result } from '../../src/core/errors.js';
import type { Identity } from '../../src/core/transfer.js';
import { Revocations } from '../../src/gateway/revocations.js';
import { SIGNING_KEY_FILE, signingKeyPath } from '../../src/gateway/token-keys.js';
import { TOKEN_AUDIENCE, TOKEN_ISSUER, Tokens } from '../../src/gateway/tokens.js';
import { createNodeClient } from '../../src/grpc/client.js';
import { reasonOf } from '../../src/grpc/errors.js';
import { createNodeServer, listenTls } from '../../src/grpc/server.js';
import { silentLogger } from '../../src/logging/logger.js';
import { authenticate, authMiddleware } from '../../src/middleware/server/auth.js';
import { loadTls } from '../../src/tls/credentials.js';
import { DEFAULT_CONFIG } from '../helpers/clock.js';

/** The configured bound of remembered verified tokens. */
const VERIFIED_MAX = DEFAULT_CONFIG.gateway.verifiedTokensMax;

const TTL_SECONDS = 3600;
const ALICE = { bank: 'BankA', username: 'alice' };

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tokens-test-'));
}

function reasonOfResult(r: Result<Identity>): string {
  return r.ok ? 'OK' : r.reason;
}

describe('tokens', () => {
  const dirs: string[] = [];
  const open: Revocations[] = [];
  const newDir = () => {
    const d = tempDir();
    dirs.push(d);
    return d;
  };
  const openRevocations = (dir: string, nowMs?: number) => {
    const r = Revocations.open(dir, nowMs);
    open.push(r);
    return r;
  };
  after(() => {
    for (const r of open) r.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('issues a token that verifies to the same identity', async () => {
    const tokens = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const before = Date.now();
    const issued = await tokens.issue(ALICE);
    const r = await tokens.verify(issued.token);
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.value).to.deep.equal({ bank: 'BankA', username: 'alice', tokenId: issued.tokenId, expiresAtMs: issued.expiresAtMs });
    expect(issued.expiresAtMs).to.be.within(Math.floor(before / 1000) * 1000 + TTL_SECONDS * 1000, Date.now() + TTL_SECONDS * 1000);
  });

  it('puts the documented claims and header in the token', async () => {
    const tokens = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const { token, tokenId } = await tokens.issue(ALICE);
    const [h, p] = token.split('.') as [string, string];
    const header = JSON.parse(new TextDecoder().decode(base64url.decode(h)));
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p)));
    expect(header).to.include({ alg: 'EdDSA', kid: tokens.key.kid });
    expect(payload).to.include({ sub: 'BankA/alice', bank: 'BankA', username: 'alice', jti: tokenId, iss: TOKEN_ISSUER, aud: TOKEN_AUDIENCE });
    expect(payload.exp - payload.iat).to.equal(TTL_SECONDS);
  });

  it('gives every token its own id', async () => {
    const tokens = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const a = await tokens.issue(ALICE);
    const b = await tokens.issue(ALICE);
    expect(a.tokenId).to.not.equal(b.tokenId);
  });

  it('refuses an expired token with TOKEN_EXPIRED', async () => {
    let nowMs = Date.now();
    const tokens = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: 60, now: () => nowMs });
    const { token } = await tokens.issue(ALICE);
    nowMs += 59_000;
    expect(reasonOfResult(await tokens.verify(token))).to.equal('OK');
    nowMs += 2_000;
    expect(reasonOfResult(await tokens.verify(token))).to.equal('TOKEN_EXPIRED');
  });

  it('refuses a tampered token with TOKEN_INVALID', async () => {
    const tokens = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const { token } = await tokens.issue(ALICE);
    const [h, p, s] = token.split('.') as [string, string, string];
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p)));
    const forged = base64url.encode(JSON.stringify({ ...payload, username: 'mallory', sub: 'BankA/mallory' }));
    expect(reasonOfResult(await tokens.verify(`${h}.${forged}.${s}`))).to.equal('TOKEN_INVALID');
    const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11);
    expect(reasonOfResult(await tokens.verify(`${h}.${p}.${flipped}`))).to.equal('TOKEN_INVALID');
    expect(reasonOfResult(await tokens.verify('garbage'))).to.equal('TOKEN_INVALID');
    expect(reasonOfResult(await tokens.verify(''))).to.equal('TOKEN_INVALID');
  });

  it('refuses a token signed by another key with TOKEN_INVALID', async () => {
    const ours = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const theirs = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    expect(theirs.key.kid).to.not.equal(ours.key.kid);
    const { token } = await theirs.issue(ALICE);
    expect(reasonOfResult(await ours.verify(token))).to.equal('TOKEN_INVALID');
  });

  it('refuses alg "none" and an HMAC token keyed with the public key', async () => {
    const tokens = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const claims = { bank: 'BankA', username: 'alice' };
    const exp = Math.floor(Date.now() / 1000) + 600;
    const unsecured = new UnsecuredJWT(claims).setSubject('BankA/alice').setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE).setJti('x').setExpirationTime(exp).encode();
    expect(reasonOfResult(await tokens.verify(unsecured))).to.equal('TOKEN_INVALID');
    const publicBytes = new TextEncoder().encode(JSON.stringify(tokens.key.publicJwk));
    const hmac = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('BankA/alice')
      .setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setJti('x').setExpirationTime(exp).sign(publicBytes);
    expect(reasonOfResult(await tokens.verify(hmac))).to.equal('TOKEN_INVALID');
  });

  it('refuses a token of our key for another issuer, audience or with an inconsistent subject', async () => {
    const tokens = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const exp = Math.floor(Date.now() / 1000) + 600;
    const sign = (iss: string, aud: string, sub: string) =>
      new SignJWT({ bank: 'BankA', username: 'alice' }).setProtectedHeader({ alg: 'EdDSA' }).setIssuer(iss)
        .setAudience(aud).setSubject(sub).setJti('x').setExpirationTime(exp).sign(tokens.key.privateKey);
    expect(reasonOfResult(await tokens.verify(await sign('someone-else', TOKEN_AUDIENCE, 'BankA/alice')))).to.equal('TOKEN_INVALID');
    expect(reasonOfResult(await tokens.verify(await sign(TOKEN_ISSUER, 'other-api', 'BankA/alice')))).to.equal('TOKEN_INVALID');
    expect(reasonOfResult(await tokens.verify(await sign(TOKEN_ISSUER, TOKEN_AUDIENCE, 'BankB/bob')))).to.equal('TOKEN_INVALID');
    expect(reasonOfResult(await tokens.verify(await sign(TOKEN_ISSUER, TOKEN_AUDIENCE, 'BankA/alice')))).to.equal('OK');
  });

  it('keeps the signing key across restarts in a 0600 file, and old tokens stay valid', async () => {
    const dir = newDir();
    const first = await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    const { token } = await first.issue(ALICE);
    const file = signingKeyPath(dir);
    expect(path.basename(file)).to.equal(SIGNING_KEY_FILE);
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).to.include({ kty: 'OKP', crv: 'Ed25519', kid: first.key.kid });
    const second = await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    expect(second.key.kid).to.equal(first.key.kid);
    expect(reasonOfResult(await second.verify(token))).to.equal('OK');
    expect(fs.readdirSync(dir)).to.deep.equal([SIGNING_KEY_FILE]);
  });

  it('publishes only the public key', async () => {
    const tokens = await Tokens.open(newDir(), { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    expect(tokens.key.publicJwk).to.have.keys(['kty', 'crv', 'x', 'kid', 'alg', 'use']);
  });

  it('refuses to start with a key file others can read', async () => {
    const dir = newDir();
    await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
    fs.chmodSync(signingKeyPath(dir), 0o644);
    let error: unknown;
    await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/chmod 600/);
  });

  describe('authenticate (header -> identity, with the denylist)', () => {
    it('needs a Bearer token', async () => {
      const dir = newDir();
      const tokens = await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
      const revocations = openRevocations(dir);
      const { token } = await tokens.issue(ALICE);
      expect(reasonOfResult(await authenticate(undefined, tokens, revocations))).to.equal('TOKEN_MISSING');
      expect(reasonOfResult(await authenticate('', tokens, revocations))).to.equal('TOKEN_MISSING');
      expect(reasonOfResult(await authenticate(`Basic ${token}`, tokens, revocations))).to.equal('TOKEN_INVALID');
      expect(reasonOfResult(await authenticate('Bearer nonsense', tokens, revocations))).to.equal('TOKEN_INVALID');
      expect(reasonOfResult(await authenticate(`Bearer ${token}`, tokens, revocations))).to.equal('OK');
      expect(reasonOfResult(await authenticate(`bearer ${token}`, tokens, revocations))).to.equal('OK');
    });

    it('refuses a revoked token with TOKEN_REVOKED, also after reopening the denylist', async () => {
      const dir = newDir();
      const tokens = await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
      const kept = await tokens.issue(ALICE);
      const revoked = await tokens.issue(ALICE);
      const first = openRevocations(dir);
      first.revoke(revoked.tokenId, revoked.expiresAtMs);
      first.revoke(revoked.tokenId, revoked.expiresAtMs); // idempotent
      expect(reasonOfResult(await authenticate(`Bearer ${revoked.token}`, tokens, first))).to.equal('TOKEN_REVOKED');
      expect(reasonOfResult(await authenticate(`Bearer ${kept.token}`, tokens, first))).to.equal('OK');
      first.close();

      const reopened = openRevocations(dir);
      expect(reasonOfResult(await authenticate(`Bearer ${revoked.token}`, tokens, reopened))).to.equal('TOKEN_REVOKED');
      expect(reasonOfResult(await authenticate(`Bearer ${kept.token}`, tokens, reopened))).to.equal('OK');
    });

    it('prunes denylist entries once their tokens have expired', () => {
      const dir = newDir();
      const nowMs = Date.now();
      const r = openRevocations(dir, nowMs);
      r.revoke('short', nowMs + 1_000, nowMs);
      r.revoke('long', nowMs + 60_000, nowMs);
      expect(r.isRevoked('short')).to.equal(true);
      r.revoke('later', nowMs + 120_000, nowMs + 2_000);
      expect(r.isRevoked('short')).to.equal(false);
      expect(r.isRevoked('long')).to.equal(true);
      r.close();
      const reopened = openRevocations(dir, nowMs + 61_000);
      expect(reopened.isRevoked('long')).to.equal(false);
      expect(reopened.isRevoked('later')).to.equal(true);
    });
  });

  describe('auth middleware on a real mTLS server', () => {
    let dir: string;
    let tokens: Tokens;
    let revocations: Revocations;
    let server: ReturnType<typeof createNodeServer>;
    let client: ReturnType<typeof createNodeClient<typeof HealthDefinition>>;

    before(async function () {
      this.timeout(30_000);
      dir = newDir();
      execFileSync(path.resolve('scripts/gen-certs.sh'), [path.join(dir, 'certs')], { stdio: 'ignore' });
      tokens = await Tokens.open(dir, { verifiedMax: VERIFIED_MAX, ttlSeconds: TTL_SECONDS });
      revocations = openRevocations(dir);
      server = createNodeServer(silentLogger(), DEFAULT_CONFIG.logging);
      const health = HealthState();
      health.setStatus('healthy');
      // Health stands in for a protected service: Check needs a token, Watch is declared public.
      server
        .with(authMiddleware({ tokens, revocations, publicMethods: new Set(['/grpc.health.v1.Health/Watch']) }))
        .add(HealthDefinition, HealthServiceImpl(health));
      const port = await listenTls(server, '127.0.0.1', 0, loadTls(path.join(dir, 'certs'), 'gateway'));
      client = createNodeClient(HealthDefinition, `localhost:${port}`, loadTls(path.join(dir, 'certs'), 'client'),
        silentLogger(), { callTimeoutMs: 5000, retryMaxAttempts: 1, retryBaseDelayMs: 10, retryMaxDelayMs: 10, ...DEFAULT_CONFIG.grpc });
    });

    after(async () => {
      client?.close();
      await server?.shutdown();
    });

    async function failure(metadata?: Metadata): Promise<[string, string | undefined]> {
      try {
        await client.client.check({ service: '' }, { metadata });
        return ['OK', undefined];
      } catch (err) {
        expect(err).to.be.instanceOf(ClientError);
        return [Status[(err as ClientError).code], reasonOf(err)];
      }
    }

    it('maps each refusal to UNAUTHENTICATED with its reason and admits a valid token', async () => {
      const good = await tokens.issue(ALICE);
      const revoked = await tokens.issue(ALICE);
      revocations.revoke(revoked.tokenId, revoked.expiresAtMs);
      expect(await failure()).to.deep.equal(['UNAUTHENTICATED', 'TOKEN_MISSING']);
      expect(await failure(new Metadata({ authorization: 'Bearer x.y.z' }))).to.deep.equal(['UNAUTHENTICATED', 'TOKEN_INVALID']);
      expect(await failure(new Metadata({ authorization: `Bearer ${revoked.token}` }))).to.deep.equal(['UNAUTHENTICATED', 'TOKEN_REVOKED']);
      expect(await failure(new Metadata({ authorization: `Bearer ${good.token}` }))).to.deep.equal(['OK', undefined]);
    });

    it('lets a public method through without a token', async () => {
      const ac = new AbortController();
      const stream = client.client.watch({ service: '' }, { signal: ac.signal });
      const first = await stream[Symbol.asyncIterator]().next();
      expect(first.done).to.equal(false);
      ac.abort();
    });
  });
});

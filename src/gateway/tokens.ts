import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, errors, jwtVerify, SignJWT, type CryptoKey, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { fail, ok, type Result } from '../core/errors.js';
import { isName } from '../core/ids.js';
import type { AccountRef, Identity } from '../core/transfer.js';
import { loadKeySet, publicJwks, TOKEN_ALG, type RetiredKey, type SigningKey } from './token-keys.js';

// Access tokens: EdDSA-signed JWTs naming one account. Verification pins the algorithm, issuer and
// audience, and checks the claims we rely on; a bad token is an expected failure (a value), not a throw.

export const TOKEN_ISSUER = 'payments-gateway';
export const TOKEN_AUDIENCE = 'payments-api';

export interface IssuedToken {
  readonly token: string;
  readonly tokenId: string;
  readonly expiresAtMs: number;
}

export interface TokenOptions {
  readonly ttlSeconds: number;
  /** Verified tokens remembered at most (config gateway.verifiedTokensMax); 0 = every call verifies. */
  readonly verifiedMax: number;
  /** Clock, ms since epoch; tests move it. */
  readonly now?: () => number;
  /** Keys published by other gateway instances (several gateways share one log), by kid. */
  readonly peers?: { find(kid: string): Promise<{ readonly publicKey: CryptoKey; readonly verifyUntilMs: number } | undefined> };
}

export class Tokens {
  private readonly now: () => number;
  /**
   * Tokens already verified, by the token string: the identity and until when it stays valid (the
   * token's expiry, or its rotated-out key's end if earlier). Saves an EdDSA verification per
   * call; revocation is still checked by the caller on every call.
   */
  private readonly verified = new Map<string, { readonly identity: Identity; readonly validUntilMs: number }>();
  /** Until when tokens of a peer instance's kid verify, as last found. */
  private readonly peerUntil = new Map<string, number>();

  constructor(
    readonly key: SigningKey,
    private readonly options: TokenOptions,
    /** Rotated-out keys: their tokens verify until each key's verifyUntilMs. */
    readonly previous: readonly RetiredKey[] = [],
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Loads (or creates at first start) the signing key in dataDir, and the rotated-out keys still valid. */
  static async open(dataDir: string, options: TokenOptions): Promise<Tokens> {
    const set = await loadKeySet(dataDir, (options.now ?? Date.now)());
    return new Tokens(set.current, options, set.previous);
  }

  /** Every key a token may currently be verified with, as a JWKS (current key first). */
  jwks(): JSONWebKeySet {
    const nowMs = this.now();
    return publicJwks(this.key, this.previous.filter((k) => k.verifyUntilMs > nowMs));
  }

  async issue(account: AccountRef): Promise<IssuedToken> {
    const nowSeconds = Math.floor(this.now() / 1000);
    const exp = nowSeconds + this.options.ttlSeconds;
    const tokenId = randomUUID();
    const token = await new SignJWT({ bank: account.bank, username: account.username })
      .setProtectedHeader({ alg: TOKEN_ALG, kid: this.key.kid, typ: 'JWT' })
      .setSubject(subjectOf(account))
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(exp)
      .setJti(tokenId)
      .sign(this.key.privateKey);
    return { token, tokenId, expiresAtMs: exp * 1000 };
  }

  /** Checks signature, algorithm, issuer, audience, expiry and claims. Does not check revocation. */
  async verify(token: string): Promise<Result<Identity>> {
    const nowMs = this.now();
    const known = this.verified.get(token);
    if (known) {
      if (nowMs < known.validUntilMs) return ok(known.identity);
      this.verified.delete(token);
    }
    let payload: JWTPayload;
    let kid: string | undefined;
    try {
      const verified = await jwtVerify(token, this.keyFor, verifyOptions(nowMs));
      payload = verified.payload;
      kid = verified.protectedHeader.kid;
    } catch (err) {
      return failureOf(err);
    }
    const identity = identityOf(payload);
    if (identity.ok) this.remember(token, identity.value, kid);
    return identity;
  }

  private remember(token: string, identity: Identity, kid: string | undefined): void {
    let validUntilMs = identity.expiresAtMs;
    if (kid !== undefined && kid !== this.key.kid) {
      const old = this.previous.find((k) => k.kid === kid);
      validUntilMs = Math.min(validUntilMs, old ? old.verifyUntilMs : this.peerUntil.get(kid) ?? 0);
    }
    if (this.options.verifiedMax === 0) return;
    if (this.verified.size >= this.options.verifiedMax) {
      const oldest = this.verified.keys().next();
      if (!oldest.done) this.verified.delete(oldest.value);
    }
    this.verified.set(token, { identity, validUntilMs });
  }

  /** The key named by the token's kid: the current key (also for a token without kid) or a rotated-out one still in its window. */
  private readonly keyFor: JWTVerifyGetKey = async (header) => {
    if (header.kid === undefined || header.kid === this.key.kid) return this.key.publicKey;
    const nowMs = this.now();
    const old = this.previous.find((k) => k.kid === header.kid && k.verifyUntilMs > nowMs);
    if (old) return old.publicKey;
    // Another gateway instance's key (shared log): published in the shared key table.
    const peer = await this.options.peers?.find(header.kid);
    if (!peer) throw new errors.JWKSNoMatchingKey('no verification key for this kid');
    this.peerUntil.set(header.kid, peer.verifyUntilMs);
    return peer.publicKey;
  };
}

/**
 * Verifies a token against a published JWKS (e.g. read from Consul KV by a node that does not hold
 * the gateway's key files). The token must name its key by kid; unknown kid -> TOKEN_INVALID.
 */
export async function verifyWithJwks(token: string, jwks: JSONWebKeySet, nowMs: number = Date.now()): Promise<Result<Identity>> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, createLocalJWKSet(jwks), verifyOptions(nowMs)));
  } catch (err) {
    return failureOf(err);
  }
  return identityOf(payload);
}

function verifyOptions(nowMs: number) {
  return {
    algorithms: [TOKEN_ALG],
    issuer: TOKEN_ISSUER,
    audience: TOKEN_AUDIENCE,
    requiredClaims: ['sub', 'exp', 'jti'],
    currentDate: new Date(nowMs),
  };
}

function failureOf(err: unknown): Result<Identity> {
  if (err instanceof errors.JWTExpired) return fail('TOKEN_EXPIRED', 'the access token has expired; log in again');
  if (err instanceof errors.JOSEError) return fail('TOKEN_INVALID', 'the access token is not valid');
  throw err;
}

export function subjectOf(account: AccountRef): string {
  return `${account.bank}/${account.username}`;
}

function identityOf(p: JWTPayload): Result<Identity> {
  const { bank, username, jti, exp, sub } = p;
  if (
    typeof bank !== 'string' || !isName(bank) ||
    typeof username !== 'string' || !isName(username) ||
    typeof jti !== 'string' || !jti ||
    typeof exp !== 'number' ||
    sub !== subjectOf({ bank, username })
  ) {
    return fail('TOKEN_INVALID', 'the access token is not valid');
  }
  return ok({ bank, username, tokenId: jti, expiresAtMs: exp * 1000 });
}

import { randomUUID } from 'node:crypto';
import { errors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { fail, ok, type Result } from '../core/errors.js';
import { isName } from '../core/ids.js';
import type { AccountRef, Identity } from '../core/transfer.js';
import { loadOrCreateSigningKey, TOKEN_ALG, type SigningKey } from './token-keys.js';

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
  /** Clock, ms since epoch; tests move it. */
  readonly now?: () => number;
}

export class Tokens {
  private readonly now: () => number;

  constructor(
    readonly key: SigningKey,
    private readonly options: TokenOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Loads (or creates at first start) the signing key in dataDir. */
  static async open(dataDir: string, options: TokenOptions): Promise<Tokens> {
    return new Tokens(await loadOrCreateSigningKey(dataDir), options);
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
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key.publicKey, {
        algorithms: [TOKEN_ALG],
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        requiredClaims: ['sub', 'exp', 'jti'],
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) return fail('TOKEN_EXPIRED', 'the access token has expired; log in again');
      if (err instanceof errors.JOSEError) return fail('TOKEN_INVALID', 'the access token is not valid');
      throw err;
    }
    return identityOf(payload);
  }
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

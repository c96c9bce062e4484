import { importJWK, type CryptoKey, type JWK } from 'jose';
import type { Clock } from '../../core/clock.js';
import { TOKEN_ALG, type KeySet } from '../token-keys.js';
import type { Sql } from './sql.js';

// Token verification keys shared by several gateways (PostgreSQL). Each instance keeps its own
// private signing key in its data folder and publishes only the public half here, so a token
// issued by one instance verifies at every other and no private key ever leaves its machine.
// (Consul KV would do too, but the database is already what every instance must reach to work at
// all, and it keeps the keys next to the state they protect.) A verifier looks up an unknown kid
// here at most once per gateway.tokenKeyRefreshMinIntervalMs, so forged kids cannot flood the database.

/** The current key of an instance is published without an end: its tokens end by their own expiry. */
const CURRENT_KEY_VERIFY_UNTIL_MS = Number.MAX_SAFE_INTEGER;

export interface PeerKey {
  readonly publicKey: CryptoKey;
  /** Tokens with this kid verify until then (ms since epoch). */
  readonly verifyUntilMs: number;
}

export class SharedVerifyKeys {
  private readonly known = new Map<string, PeerKey>();
  private refreshedAtMs = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly clock: Clock,
    /** Unknown kids make the directory re-read the table at most this often. */
    private readonly refreshMinIntervalMs: number,
  ) {}

  /** Publishes this instance's current key and its rotated-out keys still in their window. */
  async publish(instanceId: string, keys: KeySet): Promise<void> {
    const rows = [
      { kid: keys.current.kid, jwk: keys.current.publicJwk, until: CURRENT_KEY_VERIFY_UNTIL_MS },
      ...keys.previous.map((k) => ({ kid: k.kid, jwk: k.publicJwk, until: k.verifyUntilMs })),
    ];
    for (const r of rows) {
      await this.sql.query(
        `INSERT INTO token_verify_keys (kid, instance_id, public_jwk, verify_until_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kid) DO UPDATE SET instance_id = EXCLUDED.instance_id, verify_until_ms = EXCLUDED.verify_until_ms`,
        [r.kid, instanceId, JSON.stringify(r.jwk), r.until]);
    }
    // A key rotated out at this instance keeps only its window (its row above carries it).
    await this.sql.query('DELETE FROM token_verify_keys WHERE verify_until_ms <= $1', [this.clock.nowMs()]);
  }

  /** The public key of `kid` published by any instance, or undefined. */
  async find(kid: string): Promise<PeerKey | undefined> {
    const nowMs = this.clock.nowMs();
    const hit = this.known.get(kid);
    if (hit && hit.verifyUntilMs > nowMs) return hit;
    if (nowMs - this.refreshedAtMs >= this.refreshMinIntervalMs) {
      this.refreshing ??= this.refresh(nowMs).finally(() => { this.refreshing = undefined; });
    }
    if (this.refreshing) await this.refreshing;
    const found = this.known.get(kid);
    return found && found.verifyUntilMs > nowMs ? found : undefined;
  }

  private async refresh(nowMs: number): Promise<void> {
    this.refreshedAtMs = nowMs;
    const res = await this.sql.query<{ kid: string; public_jwk: JWK; verify_until_ms: string }>(
      'SELECT kid, public_jwk, verify_until_ms FROM token_verify_keys WHERE verify_until_ms > $1', [nowMs]);
    for (const row of res.rows) {
      if (this.known.has(row.kid)) continue;
      const publicKey = (await importJWK(row.public_jwk, TOKEN_ALG)) as CryptoKey;
      this.known.set(row.kid, { publicKey, verifyUntilMs: Number(row.verify_until_ms) });
    }
  }
}

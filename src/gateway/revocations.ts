import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

// The logout denylist: ids (jti) of revoked tokens with their expiry, in SQLite in the gateway's
// data folder so a revoked token stays revoked across restarts. An entry is useless once its token
// has expired (verification refuses it anyway), so entries past expiry are pruned: the table
// never holds more than the tokens revoked within one token lifetime. The entries are also kept
// in memory (loaded at open, updated by revoke), so the check on every call is a Map lookup.

export const REVOCATIONS_FILE = 'revocations.sqlite';

export class Revocations {
  private readonly insert: Database.Statement<[string, number]>;
  private readonly lookup: Database.Statement<[string], unknown>;
  private readonly prune: Database.Statement<[number]>;
  /** jti -> expiry (ms), the same entries as the table. */
  private readonly revoked = new Map<string, number>();

  private constructor(private readonly db: Database.Database) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`
      CREATE TABLE IF NOT EXISTS revoked_tokens (
        jti TEXT PRIMARY KEY,
        expires_at_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS revoked_tokens_by_expiry ON revoked_tokens (expires_at_ms);
    `);
    this.insert = db.prepare('INSERT OR IGNORE INTO revoked_tokens (jti, expires_at_ms) VALUES (?, ?)');
    this.lookup = db.prepare('SELECT 1 FROM revoked_tokens WHERE jti = ?').pluck();
    this.prune = db.prepare('DELETE FROM revoked_tokens WHERE expires_at_ms <= ?');
    db.defaultSafeIntegers(false);
    for (const row of db.prepare('SELECT jti, expires_at_ms FROM revoked_tokens').all() as { jti: string; expires_at_ms: number }[]) {
      this.revoked.set(row.jti, row.expires_at_ms);
    }
  }

  private pruneMemory(nowMs: number): void {
    for (const [jti, expiresAtMs] of this.revoked) if (expiresAtMs <= nowMs) this.revoked.delete(jti);
  }

  /** Opens (creating if needed) the denylist in dataDir and drops entries expired by nowMs. */
  static open(dataDir: string, nowMs = Date.now()): Revocations {
    fs.mkdirSync(dataDir, { recursive: true });
    const r = new Revocations(new Database(path.join(dataDir, REVOCATIONS_FILE)));
    r.prune.run(nowMs);
    r.pruneMemory(nowMs);
    return r;
  }

  /** Revokes the token; revoking it again is a no-op. Durable when this returns. */
  revoke(tokenId: string, expiresAtMs: number, nowMs = Date.now()): void {
    this.db.transaction(() => {
      this.prune.run(nowMs);
      if (expiresAtMs > nowMs) this.insert.run(tokenId, expiresAtMs);
    })();
    // Only once it is durable: memory never claims more than the file holds.
    this.pruneMemory(nowMs);
    if (expiresAtMs > nowMs) this.revoked.set(tokenId, expiresAtMs);
  }

  /** An in-memory lookup (the table's entries), cheap enough to run on every call. */
  isRevoked(tokenId: string): boolean {
    return this.revoked.has(tokenId);
  }

  /** The same question asked of the file (operators, tests). */
  isRevokedOnDisk(tokenId: string): boolean {
    return this.lookup.get(tokenId) !== undefined;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

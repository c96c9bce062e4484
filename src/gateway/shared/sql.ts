// The little of a PostgreSQL client the shared gateway state needs (a `pg` Pool fits): one
// parameterised statement at a time, autocommit. Kept this narrow so the shared pieces do not
// depend on the client library.

export interface SqlResult<R> {
  readonly rows: R[];
  readonly rowCount: number | null;
}

export interface Sql {
  query<R = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<SqlResult<R>>;
}

/** The tables of the state that several gateways share besides the transfer log (a migration). */
export const SHARED_STATE_SCHEMA = `
CREATE TABLE IF NOT EXISTS revoked_tokens (
  jti            text PRIMARY KEY,
  expires_at_ms  bigint NOT NULL,
  revoked_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS revoked_tokens_by_time ON revoked_tokens (revoked_at);
CREATE INDEX IF NOT EXISTS revoked_tokens_by_expiry ON revoked_tokens (expires_at_ms);
CREATE TABLE IF NOT EXISTS token_verify_keys (
  kid              text PRIMARY KEY,
  instance_id      text NOT NULL,
  public_jwk       jsonb NOT NULL,
  verify_until_ms  bigint NOT NULL
);
`;

import type Database from 'better-sqlite3';

// The bank's ledger tables. CHECK constraints back the code's own checks: a balance can never go
// negative and holds can never exceed the balance, whatever a bug upstream tries to write.

export const SCHEMA_VERSION = 1;

const DDL = `
CREATE TABLE accounts (
  username      TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  currency      TEXT NOT NULL,
  balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0),
  -- Sum of active debit holds, so available = balance - held is one row read.
  held_minor    INTEGER NOT NULL DEFAULT 0 CHECK (held_minor >= 0 AND held_minor <= balance_minor),
  created_at    INTEGER NOT NULL
) STRICT;

-- One row per 2PC transaction id seen here; an aborted row without legs is a tombstone.
CREATE TABLE transactions (
  id         TEXT PRIMARY KEY,
  state      TEXT NOT NULL CHECK (state IN ('prepared', 'committed', 'aborted')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX transactions_prepared ON transactions (created_at) WHERE state = 'prepared';

CREATE TABLE legs (
  tx_id                 TEXT NOT NULL REFERENCES transactions (id),
  kind                  TEXT NOT NULL CHECK (kind IN ('debit', 'credit')),
  username              TEXT NOT NULL REFERENCES accounts (username),
  amount_minor          INTEGER NOT NULL CHECK (amount_minor > 0),
  currency              TEXT NOT NULL,
  counterparty_bank     TEXT NOT NULL,
  counterparty_username TEXT NOT NULL,
  PRIMARY KEY (tx_id, kind)
) STRICT;

-- Committed movements; the UNIQUE key makes a second write of the same leg fail loudly.
CREATE TABLE history (
  seq                   INTEGER PRIMARY KEY,
  username              TEXT NOT NULL REFERENCES accounts (username),
  tx_id                 TEXT NOT NULL REFERENCES transactions (id),
  direction             TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),
  amount_minor          INTEGER NOT NULL CHECK (amount_minor > 0),
  currency              TEXT NOT NULL,
  counterparty_bank     TEXT NOT NULL,
  counterparty_username TEXT NOT NULL,
  balance_after_minor   INTEGER NOT NULL CHECK (balance_after_minor >= 0),
  created_at            INTEGER NOT NULL,
  UNIQUE (tx_id, username, direction)
) STRICT;
-- Newest-first keyset pagination: WHERE username = ? AND seq < ? ORDER BY seq DESC.
CREATE INDEX history_by_user ON history (username, seq);
`;

/** Creates the tables in a new file; refuses a file written by another schema version. */
export function migrate(db: Database.Database): void {
  const version = Number(db.pragma('user_version', { simple: true }));
  if (version === SCHEMA_VERSION) return;
  if (version !== 0) {
    throw new Error(`ledger schema version ${version} is not supported (expected ${SCHEMA_VERSION})`);
  }
  db.transaction(() => {
    db.exec(DDL);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

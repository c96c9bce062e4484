import argon2 from 'argon2';

// argon2id password hashes. Verification is async and CPU-heavy: never run it inside a SQLite
// transaction. A password is never stored, logged or echoed.

/** Longer inputs are refused before hashing so a caller cannot make us hash megabytes. */
export const PASSWORD_LENGTH_MAX_CHARS = 1024;

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id });
}

let dummyHash: Promise<string> | undefined;

function unknownUserHash(): Promise<string> {
  if (!dummyHash) {
    dummyHash = hashPassword('not-a-password-of-anyone');
    // Marked handled here; a failure still surfaces where verifyPassword awaits it.
    dummyHash.catch(() => undefined);
  }
  return dummyHash;
}

/** Computes the throwaway hash ahead of time, so even the first unknown-user check takes full time. */
export function primeUnknownUserHash(): void {
  void unknownUserHash();
}

/**
 * Checks `password` against `hash`. With no hash (unknown user) it still runs one verification
 * against a throwaway hash, so the answer time does not reveal whether the user exists.
 */
export async function verifyPassword(hash: string | undefined, password: string): Promise<boolean> {
  if (hash === undefined) {
    await argon2.verify(await unknownUserHash(), password);
    return false;
  }
  // A malformed stored hash throws: corruption is reported (INTERNAL), not hidden as a bad password.
  return argon2.verify(hash, password);
}

import { fail, ok, type Result } from '../core/errors.js';
import { INT64_MAX } from '../core/money.js';

// History page tokens are opaque to callers: base64url of the last seen history seq. A token that
// is not exactly what encodePageToken would produce is refused, never guessed at.

export function encodePageToken(seq: bigint): string {
  return Buffer.from(seq.toString(), 'utf8').toString('base64url');
}

export function decodePageToken(token: string): Result<bigint> {
  const bad = fail('INVALID_PAGE_TOKEN', 'page token is malformed; pass next_page_token from a previous response');
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(token)) return bad;
  const text = Buffer.from(token, 'base64url').toString('utf8');
  if (!/^[1-9][0-9]{0,18}$/.test(text)) return bad;
  const seq = BigInt(text);
  if (seq > INT64_MAX || encodePageToken(seq) !== token) return bad;
  return ok(seq);
}

import { clip } from '../core/clip.js';

// Picks the identifiers worth logging out of a request message, and nothing else. They come from
// the caller, so each is cut (its length noted): a 3 MB username makes no 3 MB log line.
export function callIds(request: unknown): Record<string, string> {
  if (!request || typeof request !== 'object') return {};
  const r = request as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const key of ['transactionId', 'idempotencyKey', 'username', 'bank']) {
    const v = r[key];
    if (typeof v === 'string' && v) out[key] = clip(v);
  }
  return out;
}

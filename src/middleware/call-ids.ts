// Picks the identifiers worth logging out of a request message, and nothing else.
export function callIds(request: unknown): Record<string, string> {
  if (!request || typeof request !== 'object') return {};
  const r = request as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const key of ['transactionId', 'idempotencyKey', 'username', 'bank']) {
    const v = r[key];
    if (typeof v === 'string' && v) out[key] = v;
  }
  return out;
}

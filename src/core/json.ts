// JSON.stringify throws on bigint; every place that prints or stores JSON goes through these.
export function toJson(value: unknown, space?: number): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), space);
}

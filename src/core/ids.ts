import { randomUUID } from 'node:crypto';
import { randomUint32, type Random } from './random.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_RE.test(value);
}

/** Names accepted for banks and users: short, printable, no separators we use elsewhere. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function isName(value: string): boolean {
  return NAME_RE.test(value);
}

export function newId(): string {
  return randomUUID();
}

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Ids made later sort later, so
 * rows keyed by them (2PC transactions and legs at the banks) are appended to the end of their
 * B-tree instead of landing on a random page: inserts stay cheap however big the tables grow.
 */
export function newTimeOrderedId(nowMs: number, random: Random): string {
  const bytes = Buffer.alloc(16);
  // Bytes 4..15 random; 0..5 are then overwritten by the time.
  for (const at of [4, 8, 12]) bytes.writeUInt32BE(randomUint32(random), at);
  let ms = Math.max(0, Math.floor(nowMs));
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = 0x70 | ((bytes[6] as number) & 0x0f);
  bytes[8] = 0x80 | ((bytes[8] as number) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

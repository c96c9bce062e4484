import { randomFillSync } from 'node:crypto';

// One source of randomness for protocol paths (retry jitter, ids): a seeded PRNG in tests, the
// benchmark, the chaos test and the simulator, so that a run repeats from its seed.

/** Floats in [0, 1); the 32 bits behind each float are uniform. */
export type Random = () => number;

/** Returns a generator (mulberry32) of floats in [0, 1) fully determined by `seed`. */
export function rng(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POOL_WORDS = 256;

/** The production source: the operating system's CSPRNG, drawn 256 words at a time. */
export function systemRandom(): Random {
  const pool = new Uint32Array(POOL_WORDS);
  let next = POOL_WORDS;
  return () => {
    if (next === POOL_WORDS) {
      randomFillSync(pool);
      next = 0;
    }
    return (pool[next++] as number) / 4294967296;
  };
}

/** 32 uniform bits from `random`. */
export function randomUint32(random: Random): number {
  return Math.floor(random() * 4294967296) >>> 0;
}

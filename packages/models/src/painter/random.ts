/**
 * The painter's randomness: string hashing and seeded PRNG streams. Every
 * random choice of a render comes from here, never Math.random or the clock,
 * so the same prompt + seed gives the same picture on every platform.
 */
import { mulberry32 } from '@nightshift/common';

/** FNV-1a over UTF-8, so the same prompt hashes the same on every platform. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}

/** murmur3-style finaliser folding `v` into `h`. */
export function mix(h: number, v: number): number {
  h = Math.imul(h ^ v, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export type Rng = () => number;

// Separate streams so e.g. the background texture doesn't shift when the layout draws more numbers.
export const SALT = { prompt: 0x70726f6d, layout: 0x6c61796f, texture: 0x74657874, preview: 0x70726576 } as const;

function seedParts(seed: number): [number, number] {
  return [seed >>> 0, Math.floor(seed / 4294967296) >>> 0];
}

/** The PRNG stream for one purpose (salt) of one prompt, and of one seed when given. */
export function streamFor(salt: number, promptHash: number, seed?: number): Rng {
  let h = mix(salt, promptHash);
  if (seed !== undefined) {
    const [lo, hi] = seedParts(seed);
    h = mix(mix(h, lo), hi);
  }
  return mulberry32(h);
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

/**
 * mulberry32: a small, fast seeded PRNG. Everything that must draw the same
 * numbers on every run and platform (built-in model weights, the painter,
 * fold assignment, replayable randomised tests) draws from it, never from
 * Math.random.
 */

/** Uniform numbers in [0, 1) from a 32-bit seed; the same seed gives the same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

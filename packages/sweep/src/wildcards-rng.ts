/**
 * The random numbers behind dynamic-prompt choices: a small generator
 * (sfc32) seeded from a hash of the job's seed and place in the grid, so the
 * same job always makes the same choices: at preview, at submit and on a
 * rerun.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical.js';

export interface ChoiceRng {
  /** An integer in [0, n). */
  int(n: number): number;
}

function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4_294_967_296;
  };
}

/**
 * The choices of one job. Its place is the prompt's index and the job's axis
 * values, not its flat index: adding seeds or axis values to a sweep keeps
 * the choices (so the renders) of the jobs it already had, and the preview,
 * which expands one seed of a trimmed grid, makes the same choices as the
 * submission.
 */
export function jobRng(seed: number, promptIndex: number, axes: Record<string, string | number>): ChoiceRng {
  const h = createHash('sha256').update(canonicalJson(['nightshift-dynamic-prompts-v1', seed, promptIndex, axes])).digest();
  const next = sfc32(h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12));
  for (let i = 0; i < 12; i++) next(); // sfc32's recommended warm-up
  return { int: (n) => Math.floor(next() * n) };
}

/** `k` distinct indices of [0, n) in random order (Floyd's sampling then a shuffle): O(k), whatever n is. */
export function distinctIndices(rng: ChoiceRng, n: number, k: number): number[] {
  const chosen = new Set<number>();
  for (let j = n - k; j < n; j++) {
    const t = rng.int(j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  const out = [...chosen];
  for (let i = out.length - 1; i > 0; i--) {
    const r = rng.int(i + 1);
    [out[i], out[r]] = [out[r]!, out[i]!];
  }
  return out;
}

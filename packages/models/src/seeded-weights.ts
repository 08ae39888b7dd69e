/**
 * Random-but-fixed weights for the built-in test models.
 *
 * Each tensor gets its own stream, seeded from the model seed and the
 * tensor's name, so adding a tensor never changes the others. Values are
 * uniform (no log/sin/cos), so the bytes depend on integer and IEEE
 * arithmetic only and are the same on every machine and Node version.
 */
import { mulberry32 } from '@nightshift/common';

/** FNV-1a over the UTF-16 code units: a stable 32-bit seed from a string. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class SeededWeights {
  constructor(readonly seed: number) {}

  /** `count` values, uniform with mean 0 and standard deviation `std`. */
  uniform(name: string, count: number, std: number): Float32Array {
    const next = mulberry32(hash32(`${this.seed}:${name}`));
    const half = std * Math.sqrt(3); // uniform on [−a, a] has std a/√3
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * half;
    return out;
  }

  /** Weights for a layer with `fanIn` inputs, scaled by `gain` (He-like: keeps activations near unit size). */
  layer(name: string, count: number, fanIn: number, gain = 1): Float32Array {
    return this.uniform(name, count, gain / Math.sqrt(fanIn));
  }
}

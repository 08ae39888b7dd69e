/**
 * `a.map(f)` for the samplers' per-step latent math, as a plain loop: the
 * same float32 results (each value is stored into a Float32Array, which
 * rounds it, exactly as TypedArray.prototype.map does), two to three times
 * faster in V8, which matters at 16k–64k values per step and image.
 */
export function mapF32(a: Float32Array, f: (x: number, i: number) => number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f(a[i]!, i);
  return out;
}

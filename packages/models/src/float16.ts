/**
 * IEEE 754 half precision (binary16) ↔ float32, by bit manipulation.
 *
 * Node 20 has no Float16Array, and onnxruntime-node takes and returns
 * float16 tensors as Uint16Array bit patterns, so fp16 model exports need
 * this on every feed and fetch. Rounding is round-to-nearest-even, like
 * numpy's astype(float16), torch's .half() and onnxruntime's Cast.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The binary16 bit pattern nearest to `value` (ties to even; overflow → ±Infinity; NaN stays NaN). */
export function float16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13); // ±Inf, quiet NaN
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00; // too large: ±Infinity
  if (e <= 0) {
    // Subnormal half (or zero): value = m·2^-24 with m = (1.mant) >> (14 − e).
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const full = mant | 0x800000;
    const shift = 14 - e;
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (m & 1) === 1)) m++; // may become the smallest normal: still the right bits
    return sign | m;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is correct, up to Infinity
  return sign | h;
}

/** The value of a binary16 bit pattern (exact: every half is a float32). */
export function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

let table: Float32Array | undefined;

/** All 65536 half values, built once on first use (256 KiB): decoding is then one lookup per element. */
function decodeTable(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) table[i] = float16Value(i);
  }
  return table;
}

/** float32 values → binary16 bit patterns, as onnxruntime's 'float16' tensors take them. */
export function toFloat16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float16Bits(values[i]!);
  return out;
}

/** binary16 bit patterns → float32 values. */
export function fromFloat16(bits: ArrayLike<number>): Float32Array {
  const t = decodeTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]! & 0xffff]!;
  return out;
}

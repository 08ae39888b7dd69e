// Float32 arithmetic in JS doubles. One basic operation (+ − × ÷ √) on two
// float32 values, done in double and rounded once with Math.fround, is the
// correctly rounded float32 result (double has ≥ 2·24+2 bits, so the double
// rounding is harmless). A fused multiply-add is the one operation that needs
// care: a·b is exact in double but a·b + c is rounded twice.

export const f32 = Math.fround;

/** fmaf(a, b, c): a·b + c rounded once to float32 (a, b, c float32 values). */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b; // exact: 24 + 24 bits fit in a double's 53
  const s = p + c;
  const r = f32(s);
  if (r === s) return r;
  // Double rounding bites only when s sits exactly halfway between two floats: then r's mirror
  // image through s is a float32 too (the neighbour on s's other side); otherwise it falls
  // strictly between two floats and r stands. No bit fiddling: this is the noise kernel's hot path.
  const other = 2 * s - r;
  if (f32(other) !== other) return r;
  // A tie: the exact value's side of s decides (TwoSum: s + err === p + c exactly).
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  if (err === 0) return r;
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

const view = new DataView(new ArrayBuffer(4));

/** A float32's bit pattern, for bit-for-bit comparisons. */
export function bitsOf(x: number): number {
  view.setFloat32(0, x);
  return view.getUint32(0);
}

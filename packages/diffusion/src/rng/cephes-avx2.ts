// torch's x86-64 normal kernel math: log256_ps and sincos256_ps from
// pytorch aten/src/ATen/native/cpu/avx_mathfun.h (Giovanni Garberoglio's AVX
// port of Julien Pommier's sse_mathfun, itself the Cephes logf/sinf/cosf),
// ported lane by lane, every operation rounded to float32 as the vector
// instructions round it.
import { f32, fmaf } from './float32.js';

// How GCC (‑O2 ‑mavx2 ‑mfma, ‑ffp‑contract=fast by default) compiled the
// intrinsics: a product whose only use is an add becomes one FMA.
const fma = fmaf;

const SQRTHF = f32(0.7071067811865476) // cephes_SQRTHF 0.707106781186547524;
const LOG_P = [
  7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1,
  -2.4999993993e-1, 3.3333331174e-1,
].map(f32) as [number, number, number, number, number, number, number, number, number];
const LOG_Q1 = f32(-2.12194440e-4);
const LOG_Q2 = f32(0.693359375);

// One float32 slot seen as its bits (typed arrays: much cheaper than a DataView on this hot path).
const F = new Float32Array(1);
const U = new Uint32Array(F.buffer);

/** log256_ps for one lane; x is a positive normal float32 (the kernel feeds (0, 1]). */
export function logAvx2(x0: number): number {
  if (!(x0 > 0)) return NaN;
  F[0] = Math.max(x0, 1.1754943508222875e-38);
  const bits = U[0]!;
  let e = f32((bits >>> 23) - 0x7f + 1);
  U[0] = (bits & ~0x7f800000) | 0x3f000000; // mantissa, exponent of 0.5: [0.5, 1)
  let x = F[0]!;
  if (x < SQRTHF) {
    e = f32(e - 1);
    x = f32(f32(x - 1) + x);
  } else {
    x = f32(x - 1);
  }
  const z = f32(x * x);
  let y = LOG_P[0];
  for (let k = 1; k < 9; k++) y = fma(y, x, LOG_P[k as 1]);
  y = f32(y * x);
  // y·z + e·q1 − z/2, then x + y + e·q2
  y = fma(y, z, f32(e * LOG_Q1));
  y = f32(y - f32(z * 0.5));
  x = fma(e, LOG_Q2, f32(x + y));
  return x;
}

const DP1 = -0.78515625;
const DP2 = f32(-2.4187564849853515625e-4);
const DP3 = f32(-3.774894977445941e-8) // -3.77489497744594108e-8;
const SIN_P = [f32(-1.9515295891e-4), f32(8.3321608736e-3), f32(-1.6666654611e-1)] as const;
const COS_P = [f32(2.443315711809948e-5), f32(-1.388731625493765e-3), f32(4.166664568298827e-2)] as const;
const FOPI = f32(1.27323954473516);

/** sincos256_ps for one lane: [sin x, cos x] in float32. */
export function sincosAvx2(x0: number): [number, number] {
  sincosAvx2Into(x0, SINCOS);
  return [SINCOS[0]!, SINCOS[1]!];
}

const SINCOS = new Float64Array(2);

/** sincosAvx2 without allocating: sin into out[0], cos into out[1] (the noise kernel calls it once per value pair). */
export function sincosAvx2Into(x0: number, out: Float64Array): void {
  const signSin = x0 < 0 || Object.is(x0, -0);
  let x = Math.abs(x0);
  let j = Math.trunc(f32(x * FOPI)) | 0; // cvttps: truncate toward zero
  j = (j + 1) & ~1;
  const y = f32(j);
  const swapSin = (j & 4) !== 0;
  const polyIsSin = (j & 2) === 0;
  const swapCos = ((j - 2) & 4) === 0;
  // Extended precision modular arithmetic: x = ((x − y·DP1) − y·DP2) − y·DP3
  x = fma(y, DP1, x);
  x = fma(y, DP2, x);
  x = fma(y, DP3, x);
  const z = f32(x * x);
  let c = COS_P[0];
  c = fma(c, z, COS_P[1]);
  c = fma(c, z, COS_P[2]);
  c = f32(c * z);
  c = fma(c, z, -f32(z * 0.5));
  c = f32(c + 1);
  let s = SIN_P[0];
  s = fma(s, z, SIN_P[1]);
  s = fma(s, z, SIN_P[2]);
  s = f32(s * z);
  s = fma(s, x, x);
  const sin = polyIsSin ? s : c;
  const cos = polyIsSin ? c : s;
  out[0] = signSin !== swapSin ? -sin : sin;
  out[1] = swapCos ? -cos : cos;
}

/** Image resampling in plain JS, matching libvips's where the embedder skips it. */

/**
 * Bilinear downscale with libvips affine's sampling (output pixel x samples
 * input x·W/w, top-left aligned, weights in 1/64 steps, rounded): equal to
 * sharp's `affine(…, {interpolator: 'bilinear'})` for integer ratios and
 * within 3/255 otherwise. Exported for tests.
 */
export function bilinearDown(src: Uint8Array, info: { width: number; height: number; channels: number }, tw: number, th: number): Uint8Array {
  const { width: W, height: H, channels: ch } = info;
  const axes = (n: number, N: number) => {
    const lo = new Int32Array(n);
    const hi = new Int32Array(n);
    const t = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const f = (i * N) / n;
      const i0 = Math.floor(f);
      lo[i] = Math.min(N - 1, i0);
      hi[i] = Math.min(N - 1, i0 + 1);
      t[i] = Math.round((f - i0) * 64);
    }
    return { lo, hi, t };
  };
  const xs = axes(tw, W);
  const ys = axes(th, H);
  const out = new Uint8Array(tw * th * ch);
  let o = 0;
  for (let y = 0; y < th; y++) {
    const r0 = ys.lo[y]! * W;
    const r1 = ys.hi[y]! * W;
    const ty = ys.t[y]!;
    for (let x = 0; x < tw; x++) {
      const tx = xs.t[x]!;
      const w00 = (64 - tx) * (64 - ty);
      const w01 = tx * (64 - ty);
      const w10 = (64 - tx) * ty;
      const w11 = tx * ty;
      const p00 = (r0 + xs.lo[x]!) * ch;
      const p01 = (r0 + xs.hi[x]!) * ch;
      const p10 = (r1 + xs.lo[x]!) * ch;
      const p11 = (r1 + xs.hi[x]!) * ch;
      for (let c = 0; c < ch; c++) out[o++] = (w00 * src[p00 + c]! + w01 * src[p01 + c]! + w10 * src[p10 + c]! + w11 * src[p11 + c]! + 2048) >> 12;
    }
  }
  return out;
}

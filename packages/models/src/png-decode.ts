/**
 * A small PNG decoder for the farm's own images (8-bit grey or RGB,
 * non-interlaced, as sharp writes them): zlib and the five row filters, a
 * fraction of libvips's per-call cost. Anything else is left to sharp.
 */
import zlib from 'node:zlib';

/**
 * Decodes an 8-bit grey or RGB, non-interlaced PNG (what sharp writes for the
 * farm) with zlib and the five PNG row filters; undefined for anything else.
 * Exported for tests (which compare it with sharp's decoder).
 */
export function decodePlainPng(b: Buffer): { data: Uint8Array; info: { width: number; height: number; channels: number } } | undefined {
  const size = plainPngSize(b);
  if (!size || b[28] !== 0) return undefined; // interlaced: leave it to sharp
  const [w, h] = size;
  const ch = b[25] === 2 ? 3 : 1;
  const idat: Buffer[] = [];
  for (let off = 8; off + 12 <= b.length; ) {
    const len = b.readUInt32BE(off);
    const type = b.toString('latin1', off + 4, off + 8);
    if (type === 'IDAT') idat.push(b.subarray(off + 8, off + 8 + len));
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const stride = w * ch;
  let raw: Buffer;
  try {
    raw = zlib.inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat));
  } catch {
    return undefined; // corrupt: let sharp produce the error message
  }
  if (raw.length < h * (stride + 1)) return undefined;
  const out = new Uint8Array(h * stride);
  for (let y = 0; y < h; y++) {
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    const up = dst - stride;
    const filter = raw[src - 1];
    if (filter === 0 || (filter === 2 && y === 0)) {
      out.set(raw.subarray(src, src + stride), dst);
    } else if (filter === 1) {
      for (let i = 0; i < stride; i++) out[dst + i] = raw[src + i]! + (i >= ch ? out[dst + i - ch]! : 0);
    } else if (filter === 2) {
      for (let i = 0; i < stride; i++) out[dst + i] = raw[src + i]! + out[up + i]!;
    } else if (filter === 3) {
      for (let i = 0; i < stride; i++) out[dst + i] = raw[src + i]! + (((i >= ch ? out[dst + i - ch]! : 0) + (y ? out[up + i]! : 0)) >> 1);
    } else if (filter === 4) {
      for (let i = 0; i < stride; i++) {
        const a = i >= ch ? out[dst + i - ch]! : 0;
        const u = y ? out[up + i]! : 0;
        const c = i >= ch && y ? out[up + i - ch]! : 0;
        const pa = Math.abs(u - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + u - 2 * c);
        out[dst + i] = raw[src + i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? u : c);
      }
    } else return undefined;
  }
  return { data: out, info: { width: w, height: h, channels: ch } };
}

/**
 * [width, height] of an 8-bit grey or RGB PNG with no transparency and no
 * EXIF chunk (so sharp's auto-orient is a no-op); undefined for anything else.
 */
export function plainPngSize(b: Buffer): [number, number] | undefined {
  if (b.length < 33 || b.readUInt32BE(0) !== 0x89504e47 || b.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  const depth = b[24];
  const colour = b[25];
  if (depth !== 8 || (colour !== 0 && colour !== 2)) return undefined;
  for (let off = 8; off + 8 <= b.length; ) {
    const type = b.toString('latin1', off + 4, off + 8);
    if (type === 'IDAT') return [b.readUInt32BE(16), b.readUInt32BE(20)];
    if (type === 'tRNS' || type === 'eXIf') return undefined;
    off += 12 + b.readUInt32BE(off);
  }
  return undefined;
}

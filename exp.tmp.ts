import sharp from 'sharp';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildTinyClip } from './packages/models/src/tiny-clip.ts';
import { AutoProcessor, CLIPVisionModelWithProjection, RawImage, AutoTokenizer, CLIPTextModelWithProjection } from '@huggingface/transformers';
import { COLORS, BACKGROUND } from './packages/common/src/palette.ts';

type RGB = readonly [number, number, number];
type Shape = { kind: 'circle' | 'square' | 'triangle' | 'stripes' | 'vstripes'; color: RGB; cx: number; cy: number; r: number };
function inside(s: Shape, x: number, y: number, W: number): boolean {
  const dx = x - s.cx, dy = y - s.cy;
  switch (s.kind) {
    case 'circle': return dx * dx + dy * dy <= s.r * s.r;
    case 'square': return Math.abs(dx) <= s.r && Math.abs(dy) <= s.r;
    case 'triangle': { // upright equilateral-ish, apex at top
      const top = s.cy - s.r, bot = s.cy + s.r * 0.7;
      if (y < top || y > bot) return false;
      const half = ((y - top) / (bot - top)) * s.r * 1.1;
      return Math.abs(dx) <= half;
    }
    case 'stripes': return Math.floor(y / s.r) % 2 === 0;
    case 'vstripes': return Math.floor(x / s.r) % 2 === 0;
  }
}
async function paint(shapes: Shape[], W = 256, H = 256): Promise<Buffer> {
  const buf = Buffer.alloc(W * H * 3);
  const SS = 4;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let acc = [0, 0, 0];
    for (let sy = 0; sy < SS; sy++) for (let sx = 0; sx < SS; sx++) {
      const px = x + (sx + 0.5) / SS, py = y + (sy + 0.5) / SS;
      let c: RGB = BACKGROUND as RGB;
      for (const s of shapes) if (inside(s, px, py, W)) c = s.color;
      acc = acc.map((v, i) => v + c[i]!);
    }
    for (let i = 0; i < 3; i++) buf[(y * W + x) * 3 + i] = Math.round(acc[i]! / (SS * SS));
  }
  return sharp(buf, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();
}
process.env.TINY_CLIP_DEBUG = '1';
const dir = mkdtempSync(path.join(os.tmpdir(), 'tc-'));
await buildTinyClip(dir);
const proc = await AutoProcessor.from_pretrained(dir, { local_files_only: true });
const vm = await CLIPVisionModelWithProjection.from_pretrained(dir, { local_files_only: true });
const R = COLORS.red, B = COLORS.blue, G = COLORS.green;
const cases: Record<string, Shape[]> = {
  circle1: [{ kind: 'circle', color: R, cx: 128, cy: 128, r: 70 }],
  circles3: [{ kind: 'circle', color: R, cx: 60, cy: 60, r: 30 }, { kind: 'circle', color: B, cx: 180, cy: 100, r: 40 }, { kind: 'circle', color: G, cx: 100, cy: 190, r: 25 }],
  smallcircle: [{ kind: 'circle', color: R, cx: 100, cy: 140, r: 14 }],
  square1: [{ kind: 'square', color: B, cx: 128, cy: 128, r: 60 }],
  squares3: [{ kind: 'square', color: B, cx: 60, cy: 60, r: 30 }, { kind: 'square', color: R, cx: 180, cy: 100, r: 40 }, { kind: 'square', color: G, cx: 100, cy: 200, r: 25 }],
  tri1: [{ kind: 'triangle', color: G, cx: 128, cy: 128, r: 80 }],
  tris3: [{ kind: 'triangle', color: G, cx: 60, cy: 60, r: 40 }, { kind: 'triangle', color: R, cx: 180, cy: 130, r: 50 }, { kind: 'triangle', color: B, cx: 80, cy: 200, r: 30 }],
  stripesH: [{ kind: 'stripes', color: R, cx: 0, cy: 0, r: 32 }],
  stripesV: [{ kind: 'vstripes', color: B, cx: 0, cy: 0, r: 20 }],
  stripesThin: [{ kind: 'stripes', color: G, cx: 0, cy: 0, r: 10 }],
  blank: [],
};
const names = Object.keys(cases);
const imgs = await Promise.all(names.map(async (n) => RawImage.fromBlob(new Blob([await paint(cases[n]!)]))));
const { pixel_values } = await proc(imgs);
const out = await vm({ pixel_values }) as Record<string, any>;
const keys = Object.keys(out);
console.log(keys, pixel_values.dims);
const statsKey = keys.find(k => out[k].dims[1] === 4)!;
const ratiosKey = keys.find(k => out[k].dims[1] === 8)!;
const f = (a: ArrayLike<number>) => Array.from(a).map(v => v.toFixed(3).padStart(6)).join(' ');
names.forEach((n, i) => {
  console.log(n.padEnd(12), 'stats', f(out[statsKey].data.slice(i * 4, i * 4 + 4)), '| ratios', f(out[ratiosKey].data.slice(i * 8, i * 8 + 8)));
  console.log(''.padEnd(12), 'emb  ', f(out.image_embeds.data.slice(i * 16, i * 16 + 16)));
});
// noisy + lossy variants
let seed = 1; const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
async function noisy(png: Buffer, amp: number, fmt: 'png' | 'webp' | 'jpeg') {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  for (let i = 0; i < data.length; i++) data[i] = Math.max(0, Math.min(255, data[i]! + Math.round((rnd() - 0.5) * 2 * amp)));
  const s = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } });
  return fmt === 'png' ? s.png().toBuffer() : fmt === 'webp' ? s.webp({ quality: 80 }).toBuffer() : s.jpeg({ quality: 80 }).toBuffer();
}
const variants: [string, Buffer][] = [];
for (const n of ['circle1', 'square1', 'tri1', 'stripesH']) {
  const png = await paint(cases[n]!);
  variants.push([n + '/n20', await noisy(png, 20, 'png')], [n + '/n40', await noisy(png, 40, 'png')], [n + '/webp', await noisy(png, 0, 'webp')], [n + '/jpg', await noisy(png, 10, 'jpeg')]);
}
const vimgs = await Promise.all(variants.map(([, b]) => RawImage.fromBlob(new Blob([b]))));
const vo = await vm(await proc(vimgs)) as Record<string, any>;
variants.forEach(([n], i) => {
  console.log(n.padEnd(14), 'stats', f(vo[statsKey].data.slice(i * 4, i * 4 + 4)));
  console.log(''.padEnd(14), 'emb  ', f(vo.image_embeds.data.slice(i * 16, i * 16 + 16)));
});

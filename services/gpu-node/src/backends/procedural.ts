/**
 * The built-in `procedural` backend: a deterministic painter, not an AI model.
 * It draws the palette colours and shapes named in the prompt on a grey,
 * lightly textured background, so the offline pipeline (and the tiny test CLIP
 * model) has real images with known content. Same prompt + seed + size gives
 * the same PNG bytes: every random choice comes from seeded PRNGs, never
 * Math.random or the clock.
 */
import sharp from 'sharp';
import type { Backend, RenderProgress, RenderRequest, RenderResult } from './backend.js';
import { BACKGROUND, COLORS, COLOR_NAMES, SHAPES, type ColorName, type ShapeName } from '@nightshift/common';

/** Bump when the drawing changes, so render keys (which include the model) change too. */
export const PROCEDURAL_MODEL = 'procedural-v1';

export const MIN_SIDE = 64;
export const MAX_SIDE = 2048;
export const MAX_STEPS = 1000;
const MAX_OBJECTS = 6;

// ---------------------------------------------------------------- randomness

/** FNV-1a over UTF-8, so the same prompt hashes the same on every platform. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}

/** murmur3-style finaliser folding `v` into `h`. */
function mix(h: number, v: number): number {
  h = Math.imul(h ^ v, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

type Rng = () => number;

function mulberry32(a: number): Rng {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Separate streams so e.g. the background texture doesn't shift when the layout draws more numbers.
const SALT = { prompt: 0x70726f6d, layout: 0x6c61796f, texture: 0x74657874, preview: 0x70726576 } as const;

function seedParts(seed: number): [number, number] {
  return [seed >>> 0, Math.floor(seed / 4294967296) >>> 0];
}

function streamFor(salt: number, promptHash: number, seed?: number): Rng {
  let h = mix(salt, promptHash);
  if (seed !== undefined) {
    const [lo, hi] = seedParts(seed);
    h = mix(mix(h, lo), hi);
  }
  return mulberry32(h);
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

// ---------------------------------------------------------------- prompt → scene

export interface SceneObject {
  color: ColorName;
  shape: ShapeName;
}

// A Map, not an object literal, so words like "constructor" don't hit Object.prototype.
const SHAPE_WORDS = new Map<string, ShapeName>([
  ['circle', 'circle'],
  ['circles', 'circle'],
  ['square', 'square'],
  ['squares', 'square'],
  ['triangle', 'triangle'],
  ['triangles', 'triangle'],
  ['stripe', 'stripes'],
  ['stripes', 'stripes'],
  ['striped', 'stripes'],
]);
const COLOR_SET = new Set<string>(COLOR_NAMES);

/**
 * The objects a prompt asks for, in prompt order. Colour words attach to the
 * next shape word ("a red circle and a blue square"); unnamed colours/shapes
 * come from the prompt hash only, so every seed of one prompt agrees on them.
 */
export function parseScene(prompt: string): SceneObject[] {
  const rng = streamFor(SALT.prompt, hashString(prompt));
  const hashedColors: ColorName[] = [pick(rng, COLOR_NAMES)];
  if (rng() < 0.5) {
    const second = pick(rng, COLOR_NAMES.filter((c) => c !== hashedColors[0]));
    hashedColors.push(second);
  }
  const hashedShape = pick(rng, SHAPES);

  const words = prompt.toLowerCase().match(/[a-z]+/g) ?? [];
  const firstNamed = words.find((w) => COLOR_SET.has(w)) as ColorName | undefined;
  const objects: SceneObject[] = [];
  let pending: ColorName[] = [];
  let lastColor: ColorName | undefined;
  let lastShape: ShapeName | undefined;
  let hashedIdx = 0;
  for (const w of words) {
    if (COLOR_SET.has(w)) {
      const c = w as ColorName;
      if (!pending.includes(c)) pending.push(c);
      continue;
    }
    const shape = SHAPE_WORDS.get(w);
    if (!shape) continue;
    if (pending.length > 0) lastColor = pending[pending.length - 1];
    // A bare shape takes the last named colour, else the first one named later, else the hashed ones in turn.
    else pending = [lastColor ?? firstNamed ?? hashedColors[hashedIdx++ % hashedColors.length]!];
    for (const color of pending) objects.push({ color, shape });
    lastShape = shape;
    pending = [];
  }
  // Colours after the last shape word ("a circle, red and blue") reuse the last shape.
  for (const color of pending) objects.push({ color, shape: lastShape ?? hashedShape });
  if (objects.length === 0) {
    for (const color of hashedColors) objects.push({ color, shape: hashedShape });
  }

  // Keep the first occurrence of each pair and cap the count so each stays big enough to see.
  const seen = new Set<string>();
  return objects
    .filter((o) => {
      const k = `${o.color}/${o.shape}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .slice(0, MAX_OBJECTS);
}

// ---------------------------------------------------------------- layout

type Shape =
  | { kind: 'circle'; cx: number; cy: number; r: number }
  | { kind: 'square'; cx: number; cy: number; half: number }
  | { kind: 'triangle'; pts: [number, number][] }
  | { kind: 'stripes'; x0: number; y0: number; x1: number; y1: number; nx: number; ny: number; period: number; duty: number; offset: number };

interface Placed {
  rgb: readonly [number, number, number];
  shape: Shape;
}

/**
 * Places the objects in a near-square grid (one cell each, seeded order),
 * sized so the painted area is ~30–42 % of the image. Cells with an extreme
 * aspect ratio hold a row of copies so thin images still reach that coverage.
 */
function layout(objects: SceneObject[], width: number, height: number, rng: Rng): Placed[] {
  const n = objects.length;
  const coverage = 0.3 + 0.12 * rng();
  const cols = Math.min(n, Math.max(1, Math.round(Math.sqrt((n * width) / height))));
  const rows = Math.ceil(n / cols);
  const cellW = width / cols;
  const cellH = height / rows;

  const cells = Array.from({ length: cols * rows }, (_, i) => i);
  for (let i = cells.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [cells[i], cells[j]] = [cells[j]!, cells[i]!];
  }

  const placed: Placed[] = [];
  objects.forEach((obj, i) => {
    const cell = cells[i]!;
    const cx0 = (cell % cols) * cellW;
    const cy0 = Math.floor(cell / cols) * cellH;
    const aspect = Math.max(cellW, cellH) / Math.min(cellW, cellH);
    const copies = aspect >= 2.5 ? Math.round(aspect) : 1;
    const horizontal = cellW >= cellH;
    const bw = horizontal ? cellW / copies : cellW;
    const bh = horizontal ? cellH : cellH / copies;
    const target = (coverage * width * height) / (n * copies);
    const rgb = COLORS[obj.color];
    for (let k = 0; k < copies; k++) {
      const bx = cx0 + (horizontal ? k * bw : 0);
      const by = cy0 + (horizontal ? 0 : k * bh);
      placed.push({ rgb, shape: placeShape(obj.shape, bx, by, bw, bh, target, rng) });
    }
  });
  return placed;
}

/** One shape of about `target` px² inside box (bx, by, bw, bh), jittered by the seed. */
function placeShape(kind: ShapeName, bx: number, by: number, bw: number, bh: number, target: number, rng: Rng): Shape {
  const m = Math.min(bw, bh);
  // Centre of an extent-(ex, ey) shape placed anywhere it fits.
  const at = (ex: number, ey: number): [number, number] => [
    bx + ex / 2 + rng() * Math.max(0, bw - ex),
    by + ey / 2 + rng() * Math.max(0, bh - ey),
  ];
  switch (kind) {
    case 'circle': {
      const r = Math.min(Math.sqrt(target / Math.PI), 0.48 * m);
      const [cx, cy] = at(2 * r, 2 * r);
      return { kind, cx, cy, r };
    }
    case 'square': {
      const side = Math.min(Math.sqrt(target), 0.96 * m);
      const [cx, cy] = at(side, side);
      return { kind, cx, cy, half: side / 2 };
    }
    case 'triangle': {
      // Isosceles triangle scaled inside the box; area = s² · bw · bh / 2.
      const s = Math.min(0.96, Math.sqrt((2 * target) / (bw * bh)));
      const tw = s * bw;
      const th = s * bh;
      const [cx, cy] = at(tw, th);
      const l = cx - tw / 2;
      const r = cx + tw / 2;
      const t = cy - th / 2;
      const b = cy + th / 2;
      const dir = Math.floor(rng() * 4);
      const pts: [number, number][] =
        dir === 0 ? [[cx, t], [r, b], [l, b]] // apex up
        : dir === 1 ? [[cx, b], [l, t], [r, t]] // apex down
        : dir === 2 ? [[l, cy], [r, t], [r, b]] // apex left
        : [[r, cy], [l, b], [l, t]]; // apex right
      return { kind, pts };
    }
    case 'stripes': {
      // Bands over most of the box; duty cycle sets the painted fraction.
      const fw = 0.96 * bw;
      const fh = 0.96 * bh;
      const duty = Math.min(0.6, Math.max(0.2, target / (fw * fh)));
      const [cx, cy] = at(fw, fh);
      const dir = Math.floor(rng() * 4);
      const d = Math.SQRT1_2;
      const [nx, ny] = dir === 0 ? [0, 1] : dir === 1 ? [1, 0] : dir === 2 ? [d, d] : [d, -d];
      const period = Math.max(6, m / (3 + Math.floor(rng() * 4)));
      return {
        kind,
        x0: cx - fw / 2,
        y0: cy - fh / 2,
        x1: cx + fw / 2,
        y1: cy + fh / 2,
        nx,
        ny,
        period,
        duty,
        offset: rng() * period,
      };
    }
  }
}

// ---------------------------------------------------------------- rasterising

function bounds(s: Shape): [number, number, number, number] {
  switch (s.kind) {
    case 'circle':
      return [s.cx - s.r, s.cy - s.r, s.cx + s.r, s.cy + s.r];
    case 'square':
      return [s.cx - s.half, s.cy - s.half, s.cx + s.half, s.cy + s.half];
    case 'triangle': {
      const xs = s.pts.map((p) => p[0]);
      const ys = s.pts.map((p) => p[1]);
      return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    }
    case 'stripes':
      return [s.x0, s.y0, s.x1, s.y1];
  }
}

/** Signed distance in px, positive inside; alpha = clamp(d + 0.5) gives 1-px antialiasing. */
function distanceFn(s: Shape): (x: number, y: number) => number {
  switch (s.kind) {
    case 'circle':
      return (x, y) => s.r - Math.hypot(x - s.cx, y - s.cy);
    case 'square':
      return (x, y) => s.half - Math.max(Math.abs(x - s.cx), Math.abs(y - s.cy));
    case 'triangle': {
      // Intersection of three half-planes; orient edges so the centroid is inside.
      const [a, b, c] = s.pts as [[number, number], [number, number], [number, number]];
      const gx = (a[0] + b[0] + c[0]) / 3;
      const gy = (a[1] + b[1] + c[1]) / 3;
      const edges = [
        [a, b],
        [b, c],
        [c, a],
      ].map(([p, q]) => {
        let nx = -(q![1] - p![1]);
        let ny = q![0] - p![0];
        const len = Math.hypot(nx, ny);
        nx /= len;
        ny /= len;
        let k = -(nx * p![0] + ny * p![1]);
        if (nx * gx + ny * gy + k < 0) {
          nx = -nx;
          ny = -ny;
          k = -k;
        }
        return [nx, ny, k] as const;
      });
      return (x, y) => {
        let d = Infinity;
        for (const [nx, ny, k] of edges) d = Math.min(d, nx * x + ny * y + k);
        return d;
      };
    }
    case 'stripes': {
      const on = s.duty * s.period;
      return (x, y) => {
        const box = Math.min(x - s.x0, s.x1 - x, y - s.y0, s.y1 - y);
        let phase = (s.nx * x + s.ny * y + s.offset) % s.period;
        if (phase < 0) phase += s.period;
        const band = phase < on ? Math.min(phase, on - phase) : -Math.min(phase - on, s.period - phase);
        return Math.min(box, band);
      };
    }
  }
}

/** Grey background with a faint seeded texture: smooth value noise (±6) plus grain (±2). */
function paintBackground(rgb: Uint8ClampedArray, width: number, height: number, rng: Rng): void {
  const g = 16;
  const gw = Math.ceil(width / g) + 2;
  const gh = Math.ceil(height / g) + 2;
  const grid = new Float32Array(gw * gh);
  for (let i = 0; i < grid.length; i++) grid[i] = (rng() * 2 - 1) * 6;
  const grainSeed = Math.floor(rng() * 4294967296);
  const [br, bg, bb] = BACKGROUND;
  for (let y = 0; y < height; y++) {
    const gy = Math.floor(y / g);
    let fy = (y % g) / g;
    fy = fy * fy * (3 - 2 * fy);
    for (let x = 0; x < width; x++) {
      const gx = Math.floor(x / g);
      let fx = (x % g) / g;
      fx = fx * fx * (3 - 2 * fx);
      const i0 = gy * gw + gx;
      const top = grid[i0]! + (grid[i0 + 1]! - grid[i0]!) * fx;
      const bot = grid[i0 + gw]! + (grid[i0 + gw + 1]! - grid[i0 + gw]!) * fx;
      // Per-pixel grain from a position hash: no sequential state, so cheap and order-free.
      const grain = ((mix(grainSeed, y * width + x) & 0xff) / 255 - 0.5) * 4;
      const v = top + (bot - top) * fy + grain;
      const o = (y * width + x) * 3;
      rgb[o] = br + v;
      rgb[o + 1] = bg + v;
      rgb[o + 2] = bb + v;
    }
  }
}

function paintShape(rgb: Uint8ClampedArray, width: number, height: number, p: Placed): void {
  const [bx0, by0, bx1, by1] = bounds(p.shape);
  const x0 = Math.max(0, Math.floor(bx0) - 1);
  const y0 = Math.max(0, Math.floor(by0) - 1);
  const x1 = Math.min(width, Math.ceil(bx1) + 1);
  const y1 = Math.min(height, Math.ceil(by1) + 1);
  const dist = distanceFn(p.shape);
  const [r, g, b] = p.rgb;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const a = dist(x + 0.5, y + 0.5) + 0.5;
      if (a <= 0) continue;
      const o = (y * width + x) * 3;
      if (a >= 1) {
        rgb[o] = r;
        rgb[o + 1] = g;
        rgb[o + 2] = b;
      } else {
        rgb[o] = rgb[o]! + (r - rgb[o]!) * a;
        rgb[o + 1] = rgb[o + 1]! + (g - rgb[o + 1]!) * a;
        rgb[o + 2] = rgb[o + 2]! + (b - rgb[o + 2]!) * a;
      }
    }
  }
}

// ---------------------------------------------------------------- public API

export interface ProceduralImage {
  /** Raw RGB, 3 bytes per pixel, row-major. */
  data: Buffer;
  width: number;
  height: number;
  objects: SceneObject[];
}

export function validateRenderInput(prompt: unknown, seed: unknown, width: unknown, height: unknown, steps?: unknown): void {
  if (typeof prompt !== 'string') throw new TypeError('prompt must be a string');
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${String(seed)}`);
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < MIN_SIDE || v > MAX_SIDE || v % 8 !== 0) {
      throw new RangeError(`${name} must be a multiple of 8 from ${MIN_SIDE} to ${MAX_SIDE}, got ${String(v)}`);
    }
  }
  if (steps !== undefined && (typeof steps !== 'number' || !Number.isInteger(steps) || steps < 1 || steps > MAX_STEPS)) {
    throw new RangeError(`steps must be an integer from 1 to ${MAX_STEPS}, got ${String(steps)}`);
  }
}

/** The final image as raw RGB (no encoding). Pure function of its arguments. */
export function renderProcedural(prompt: string, seed: number, width: number, height: number): ProceduralImage {
  validateRenderInput(prompt, seed, width, height);
  const promptHash = hashString(prompt);
  const objects = parseScene(prompt);
  const rgb = new Uint8ClampedArray(width * height * 3);
  paintBackground(rgb, width, height, streamFor(SALT.texture, promptHash, seed));
  for (const p of layout(objects, width, height, streamFor(SALT.layout, promptHash, seed))) {
    paintShape(rgb, width, height, p);
  }
  return { data: Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), width, height, objects };
}

/** Fixed encoder settings: with a given sharp/libvips build these give identical bytes. */
export async function encodePng(rgb: Buffer, width: number, height: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 6, adaptiveFiltering: false, palette: false })
    .toBuffer();
}

export interface ProceduralOptions {
  /** Longest side of preview frames (px). */
  previewMaxSide?: number;
  /** WebP quality of previews. */
  previewQuality?: number;
  /** Upper bound on preview frames per render (the last step always has one). */
  maxPreviews?: number;
}

function abortError(): Error {
  return new DOMException('render aborted', 'AbortError');
}

function checkAbort(signal: AbortSignal): void {
  if (signal.aborted) throw abortError();
}

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class ProceduralBackend implements Backend {
  readonly name = 'procedural';
  readonly models: readonly string[] = [PROCEDURAL_MODEL];
  private readonly previewMaxSide: number;
  private readonly previewQuality: number;
  private readonly maxPreviews: number;

  constructor(opts: ProceduralOptions = {}) {
    this.previewMaxSide = opts.previewMaxSide ?? 128;
    this.previewQuality = opts.previewQuality ?? 60;
    this.maxPreviews = Math.max(1, opts.maxPreviews ?? 8);
  }

  async render(req: RenderRequest, onProgress: (p: RenderProgress) => void, signal: AbortSignal): Promise<RenderResult> {
    const { width, height, steps } = req.params;
    validateRenderInput(req.prompt, req.seed, width, height, steps);
    checkAbort(signal);

    const img = renderProcedural(req.prompt, req.seed, width, height);

    // Previews are a small nearest-neighbour copy blended from seeded colour noise to the image.
    const scale = Math.min(1, this.previewMaxSide / Math.max(width, height));
    const pw = Math.max(1, Math.round(width * scale));
    const ph = Math.max(1, Math.round(height * scale));
    const small = new Uint8Array(pw * ph * 3);
    for (let y = 0; y < ph; y++) {
      const sy = Math.min(height - 1, Math.floor(((y + 0.5) * height) / ph));
      for (let x = 0; x < pw; x++) {
        const sx = Math.min(width - 1, Math.floor(((x + 0.5) * width) / pw));
        small.set(img.data.subarray((sy * width + sx) * 3, (sy * width + sx) * 3 + 3), (y * pw + x) * 3);
      }
    }
    const noiseRng = streamFor(SALT.preview, hashString(req.prompt), req.seed);
    const noise = new Uint8Array(small.length);
    for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(noiseRng() * 256);
    const frame = Buffer.alloc(small.length);

    const interval = Math.max(1, Math.ceil(steps / this.maxPreviews));
    for (let step = 1; step <= steps; step++) {
      // Yield each step so an abort (or the node's heartbeat) gets a turn.
      await yieldTurn();
      checkAbort(signal);
      let preview: Buffer | undefined;
      if (step % interval === 0 || step === steps) {
        const t = step / steps;
        for (let i = 0; i < frame.length; i++) frame[i] = Math.round(noise[i]! + (small[i]! - noise[i]!) * t);
        preview = await sharp(frame, { raw: { width: pw, height: ph, channels: 3 } })
          .webp({ quality: this.previewQuality, effort: 1 })
          .toBuffer();
        checkAbort(signal);
      }
      onProgress(preview ? { step, total: steps, preview } : { step, total: steps });
    }

    const png = await encodePng(img.data, width, height);
    checkAbort(signal);
    return { png };
  }
}

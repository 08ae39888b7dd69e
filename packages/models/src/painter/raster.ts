/**
 * Geometry → pixels: the textured grey background and antialiased shapes,
 * drawn into a raw RGB buffer (3 bytes per pixel, row-major).
 */
import { BACKGROUND } from '@nightshift/common';
import type { Placed, Shape } from './layout.js';
import { mix, type Rng } from './random.js';

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
export function paintBackground(rgb: Uint8ClampedArray, width: number, height: number, rng: Rng): void {
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

export function paintShape(rgb: Uint8ClampedArray, width: number, height: number, p: Placed): void {
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

/**
 * Scene → geometry: where each object of a scene goes and how big it is, so
 * the painted area is about the same share of every image size.
 */
import { COLORS, type ShapeName } from '@nightshift/common';
import type { Rng } from './random.js';
import type { SceneObject } from './scene.js';

export type Shape =
  | { kind: 'circle'; cx: number; cy: number; r: number }
  | { kind: 'square'; cx: number; cy: number; half: number }
  | { kind: 'triangle'; pts: [number, number][] }
  | { kind: 'stripes'; x0: number; y0: number; x1: number; y1: number; nx: number; ny: number; period: number; duty: number; offset: number };

export interface Placed {
  rgb: readonly [number, number, number];
  shape: Shape;
}

/**
 * Places the objects in a near-square grid (one cell each, seeded order),
 * sized so the painted area is ~30–42 % of the image. Cells with an extreme
 * aspect ratio hold a row of copies so thin images still reach that coverage.
 */
export function layout(objects: SceneObject[], width: number, height: number, rng: Rng): Placed[] {
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

/**
 * The colour and shape words the procedural renderer paints and the built-in
 * test CLIP model (nightshift-tiny-clip) recognises. Both sides import this one
 * list so that "red" in a prompt and "red" in a search mean the same pixels.
 * Real CLIP models know nothing of it; it only exists for the offline path.
 */
export const COLORS = {
  red: [220, 30, 30],
  green: [30, 170, 50],
  blue: [30, 70, 220],
  yellow: [240, 220, 30],
  orange: [245, 140, 20],
  purple: [140, 40, 180],
  pink: [245, 120, 190],
  cyan: [40, 210, 220],
  white: [245, 245, 245],
  black: [15, 15, 15],
  brown: [120, 70, 30],
} as const satisfies Record<string, readonly [number, number, number]>;

export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];

export const SHAPES = ['circle', 'square', 'triangle', 'stripes'] as const;
export type ShapeName = (typeof SHAPES)[number];

/** Background tone the renderer uses: a mid grey that is none of the colours above. */
export const BACKGROUND: readonly [number, number, number] = [128, 128, 128];

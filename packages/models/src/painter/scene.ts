/** Prompt → scene: which palette colours and shapes a prompt asks the painter for. */
import { COLOR_NAMES, SHAPES, type ColorName, type ShapeName } from '@nightshift/common';
import { hashString, pick, SALT, streamFor } from './random.js';

const MAX_OBJECTS = 6;

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

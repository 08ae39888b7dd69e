/**
 * The procedural painter: a deterministic picture of the palette colours and
 * shapes a prompt names, on a grey, lightly textured background. Not an AI
 * model: it gives the offline pipeline (and the tiny test CLIP model) real
 * images with known content. Same prompt + seed + size gives the same pixels.
 */
import { layout } from './layout.js';
import { hashString, SALT, streamFor } from './random.js';
import { paintBackground, paintShape } from './raster.js';
import { parseScene, type SceneObject } from './scene.js';

export const MIN_SIDE = 64;
export const MAX_SIDE = 2048;
export const MAX_STEPS = 1000;

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

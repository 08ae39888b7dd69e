/**
 * @nightshift/models: the project's own small ONNX models, the CLIP embedder
 * that loads them (or a real CLIP export) through transformers.js, and the
 * procedural painter whose pictures the tiny CLIP model knows.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { buildTinyClip, TINY_CLIP_NAME, tinyClipFiles } from './tiny-clip.js';

export { buildTinyClip, TINY_CLIP_CONCEPTS, TINY_CLIP_DIM, TINY_CLIP_IMAGE_SIZE, TINY_CLIP_NAME, TINY_CLIP_VERSION, tinyClipFiles } from './tiny-clip.js';
export { bilinearDown, ClipEmbedder, cosine, decodePlainPng, normalise, plainPngSize } from './embed.js';
export type { ClipEmbedderOptions, HubOptions, PreparedImage } from './embed.js';
export { attr, DataType, GraphBuilder } from './onnx-builder.js';
export type { AttrValue, Dim, ModelOptions } from './onnx-builder.js';
export { MAX_SIDE, MAX_STEPS, MIN_SIDE, renderProcedural, validateRenderInput } from './painter/render.js';
export type { ProceduralImage } from './painter/render.js';
export { parseScene } from './painter/scene.js';
export type { SceneObject } from './painter/scene.js';
export { encodePng } from './painter/encode.js';
export { PreviewRamp } from './painter/preview.js';
export type { PreviewOptions } from './painter/preview.js';

/** True when every file of the folder already has exactly the bytes this code would write. */
async function isCurrent(folder: string): Promise<boolean> {
  for (const [rel, content] of tinyClipFiles()) {
    let onDisk: Buffer;
    try {
      onDisk = await readFile(path.join(folder, rel));
    } catch {
      return false;
    }
    const want = typeof content === 'string' ? Buffer.from(content) : content;
    if (!onDisk.equals(want)) return false;
  }
  return true;
}

/**
 * Makes sure `<modelsDir>/nightshift-tiny-clip` holds the current build and
 * returns its absolute path. Builds only when the folder is missing or differs
 * from what this version writes (a version bump changes config.json, so it is
 * covered). The build goes to a temporary sibling first and is renamed into
 * place, so a reader never sees a half-written folder and two processes
 * ensuring at once both end with the same result.
 */
export async function ensureTinyClip(modelsDir: string): Promise<string> {
  const target = path.resolve(modelsDir, TINY_CLIP_NAME);
  if (await isCurrent(target)) return target;

  await mkdir(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}-${randomUUID()}`;
  try {
    await buildTinyClip(tmp);
    for (let attempt = 0; ; attempt++) {
      try {
        await rename(tmp, target); // atomic when target is absent
        return target;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      }
      // Something is in the way: another process's identical build (keep it),
      // or a stale folder (move it aside and try again).
      if (await isCurrent(target)) return target;
      if (attempt >= 5) throw new Error(`ensureTinyClip: could not replace ${target}`);
      const old = `${target}.old-${process.pid}-${randomUUID()}`;
      try {
        await rename(target, old);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      await rm(old, { recursive: true, force: true });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
export {
  buildTinyUpscaler,
  ensureTinyUpscaler,
  tinyUpscalerBytes,
  TINY_UPSCALER_FILE,
  TINY_UPSCALER_NAME,
  TINY_UPSCALER_SCALE,
  TINY_UPSCALER_VERSION,
} from './tiny-upscaler.js';

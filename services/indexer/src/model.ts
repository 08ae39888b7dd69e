/**
 * Which CLIP model the indexer uses: NIGHTSHIFT_CLIP_MODEL as a local model
 * folder (DESIGN.md layout); without it, the built-in test model, built into
 * the data folder on first use — and the log says so, because its results
 * are only meaningful for the procedural renderer's colours and shapes.
 */
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ClipEmbedder, ensureTinyClip, TINY_CLIP_NAME } from '@nightshift/models';
import type { Logger } from '@nightshift/common';

export interface LoadedModel {
  embedder: ClipEmbedder;
  /** Recorded with each vector, so a model change can be detected. */
  id: string;
}

export async function loadModel(setting: string | undefined, dataDir: string, log: Logger): Promise<LoadedModel> {
  let folder: string;
  if (setting) {
    folder = resolve(setting);
    if (!existsSync(join(folder, 'config.json'))) {
      throw new Error(`NIGHTSHIFT_CLIP_MODEL=${setting}: no model folder there (expected config.json, tokenizer.json, preprocessor_config.json and onnx/)`);
    }
  } else {
    folder = await ensureTinyClip(join(dataDir, 'models'));
    log.warn({ model: TINY_CLIP_NAME, folder }, 'no NIGHTSHIFT_CLIP_MODEL set: using the built-in test model nightshift-tiny-clip (colours and shapes only, not a real CLIP)');
  }
  const embedder = await ClipEmbedder.load(folder);
  log.info({ folder, dim: embedder.dim }, 'CLIP model loaded');
  return { embedder, id: basename(folder) };
}

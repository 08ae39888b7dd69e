/**
 * Which aesthetic head the indexer uses (NIGHTSHIFT_AESTHETIC_MODEL):
 *  - unset: none (best rankings need the taste model);
 *  - `nightshift-tiny-aesthetic`: the built-in test head (packages/models),
 *    built into the data folder; it only fits nightshift-tiny-clip;
 *  - a path to an .onnx file, e.g. the LAION aesthetic predictor exported to ONNX;
 *  - `registry:NAME`: a head in the farm's model registry (aesthetic-registry.ts).
 * A head that does not fit the CLIP model stops the indexer at start with a
 * message saying so, except when the CLIP model itself is the built-in
 * fallback for one that could not be had: then the head is left off, loudly,
 * as search is kept working on the fallback.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '@nightshift/common';
import type { RegistryStorage } from '@nightshift/registry';
import { ensureTinyAesthetic, TINY_AESTHETIC_NAME } from '@nightshift/models';
import { Aesthetic } from './aesthetic.js';
import { AestheticHeadError, loadAestheticHead } from './aesthetic-head.js';
import { REGISTRY_PREFIX, registryHeadFile } from './aesthetic-registry.js';
import type { LoadedModel } from './model.js';
import type { IndexStore } from './store.js';

/** The .onnx file a setting names (building the built-in head, or fetching a registry one, when it is named). */
export async function aestheticHeadFile(setting: string, dataDir: string, storage: RegistryStorage): Promise<string> {
  if (setting === TINY_AESTHETIC_NAME) return ensureTinyAesthetic(join(dataDir, 'models'));
  if (setting.startsWith(REGISTRY_PREFIX)) return registryHeadFile(setting.slice(REGISTRY_PREFIX.length), storage, dataDir);
  if (!setting.endsWith('.onnx') && !existsSync(setting)) {
    throw new AestheticHeadError(`NIGHTSHIFT_AESTHETIC_MODEL=${setting}: neither an .onnx file, ${REGISTRY_PREFIX}NAME nor ${TINY_AESTHETIC_NAME}`);
  }
  return resolve(setting);
}

/** The configured head at work on this store, or undefined when none is configured (or it had to be left off). */
export async function openAesthetic(
  setting: string | undefined,
  dataDir: string,
  storage: RegistryStorage,
  model: LoadedModel,
  store: IndexStore,
  log: Logger,
): Promise<Aesthetic | undefined> {
  if (!setting) return undefined;
  let head;
  try {
    head = await loadAestheticHead(await aestheticHeadFile(setting, dataDir, storage), model.embedder.dim, { label: `NIGHTSHIFT_AESTHETIC_MODEL=${setting}` });
  } catch (err) {
    if (!(err instanceof AestheticHeadError) || !model.fallback) throw err;
    log.error({ err: err.message }, 'aesthetic head LEFT OFF while the CLIP model is the built-in fallback: best rankings need 10 favorites until the configured CLIP model loads');
    return undefined;
  }
  log.info({ head: head.id, width: head.width }, 'aesthetic head loaded');
  return new Aesthetic(store, head, log);
}

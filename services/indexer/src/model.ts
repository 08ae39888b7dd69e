/**
 * Which CLIP model the indexer uses (NIGHTSHIFT_CLIP_MODEL):
 *  - a local model folder (the layout in docs/design.md "CLIP models");
 *  - a Hub id such as `Xenova/clip-vit-base-patch32`, downloaded into the
 *    data folder where the network allows (HF_ENDPOINT picks a mirror);
 *  - `registry:NAME`: a CLIP folder from the farm's model registry, pulled
 *    into the data folder's model cache (registry-model.ts);
 *  - nothing: the built-in test model nightshift-tiny-clip.
 * When a configured model cannot be had, the indexer falls back to the test
 * model and says so loudly (an error log line, and `modelFallback` in
 * /healthz): search keeps working for the procedural renderer's colours and
 * shapes, and when the real model becomes available the next start sees a
 * model change and re-embeds everything from S3.
 *
 * The model id recorded with each vector includes a hash of the model's
 * files, so replacing a folder's weights is a model change too.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ClipEmbedder, ensureTinyClip, TINY_CLIP_NAME } from '@nightshift/models';
import type { Logger } from '@nightshift/common';
import { pullRegistryClip, REGISTRY_PREFIX, type RegistryClipOptions } from './registry-model.js';

export interface LoadedModel {
  embedder: ClipEmbedder;
  /** Recorded with each vector, so a model change can be detected. */
  id: string;
  /** Why the configured model was not used, when it was not. */
  fallback?: string | undefined;
}

export interface ModelOptions {
  /** Hub base URL (the usual HF_ENDPOINT). */
  hubEndpoint?: string | undefined;
  hubTimeoutMs?: number;
  imageBatchSize?: number;
  /** onnxruntime intra-op threads per forward pass (0: onnxruntime's default, one per core). */
  threads?: number;
  /** The farm's bucket, for NIGHTSHIFT_CLIP_MODEL=registry:NAME. */
  registry?: Omit<RegistryClipOptions, 'dataDir'>;
}

const HUB_ID = /^[\w.-]+\/[\w.-]+$/;

/** sha256 over the folder's config, tokenizer, preprocessor and ONNX files (names and bytes), first 12 hex chars. */
export async function fingerprint(folder: string): Promise<string> {
  const h = createHash('sha256');
  const files = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json'].filter((f) => existsSync(join(folder, f)));
  const onnx = existsSync(join(folder, 'onnx')) ? readdirSync(join(folder, 'onnx')).filter((f) => f.endsWith('.onnx')).sort().map((f) => `onnx/${f}`) : [];
  for (const f of [...files, ...onnx]) {
    h.update(`${f}\0${statSync(join(folder, f)).size}\0`);
    for await (const chunk of createReadStream(join(folder, f))) h.update(chunk as Buffer);
  }
  return h.digest('hex').slice(0, 12);
}

/**
 * onnxruntime-node runs a forward pass on the main thread; batches of the
 * consumer's workers take turns there, so one intra-op thread per pass by
 * default and no spin-waiting (which burns CPU the S3 server and decoding need).
 */
const embedderOptions = (opts: ModelOptions) => ({ imageBatchSize: opts.imageBatchSize ?? 64, threads: opts.threads ?? 1, spinning: false });

async function fromFolder(folder: string, opts: ModelOptions): Promise<LoadedModel> {
  const embedder = await ClipEmbedder.load(folder, embedderOptions(opts));
  return { embedder, id: `${basename(folder)}@${await fingerprint(folder)}` };
}

async function testModel(dataDir: string, opts: ModelOptions): Promise<LoadedModel> {
  return fromFolder(await ensureTinyClip(join(dataDir, 'models')), opts);
}

export async function loadModel(setting: string | undefined, dataDir: string, log: Logger, opts: ModelOptions = {}): Promise<LoadedModel> {
  let loaded: LoadedModel;
  if (!setting) {
    loaded = await testModel(dataDir, opts);
    log.warn({ model: TINY_CLIP_NAME }, 'no NIGHTSHIFT_CLIP_MODEL set: using the built-in test model nightshift-tiny-clip (colours and shapes only, not a real CLIP)');
  } else if (setting.startsWith(REGISTRY_PREFIX)) {
    if (!opts.registry) throw new Error(`NIGHTSHIFT_CLIP_MODEL=${setting}: this indexer has no bucket to read the model registry from`);
    try {
      const pulled = await pullRegistryClip(setting, { ...opts.registry, dataDir });
      loaded = { embedder: await ClipEmbedder.load(pulled.folder, embedderOptions(opts)), id: pulled.id };
    } catch (err) {
      const reason = (err as Error).message;
      loaded = { ...(await testModel(dataDir, opts)), fallback: reason };
      log.error(
        { model: setting, err: reason },
        `NIGHTSHIFT_CLIP_MODEL=${setting} could not be loaded from the model registry: FALLING BACK to the built-in test model nightshift-tiny-clip, which only knows colours and shapes. The next start tries the registry again.`,
      );
    }
  } else if (existsSync(setting) || setting.startsWith('/') || setting.startsWith('.')) {
    const folder = resolve(setting);
    if (!existsSync(join(folder, 'config.json'))) {
      throw new Error(`NIGHTSHIFT_CLIP_MODEL=${setting}: no model folder there (expected config.json, tokenizer.json, preprocessor_config.json and onnx/)`);
    }
    loaded = await fromFolder(folder, opts);
  } else if (HUB_ID.test(setting)) {
    try {
      const embedder = await ClipEmbedder.loadFromHub(setting, {
        cacheDir: join(dataDir, 'models', 'hub'),
        remoteHost: opts.hubEndpoint,
        timeoutMs: opts.hubTimeoutMs ?? 120_000,
        ...embedderOptions(opts),
      });
      loaded = { embedder, id: `hub:${setting}` };
    } catch (err) {
      const reason = (err as Error).message;
      loaded = { ...(await testModel(dataDir, opts)), fallback: reason };
      log.error(
        { model: setting, err: reason },
        `NIGHTSHIFT_CLIP_MODEL=${setting} could not be loaded from the Hub (no network access?): FALLING BACK to the built-in test model nightshift-tiny-clip, which only knows colours and shapes. Download the model folder elsewhere and point NIGHTSHIFT_CLIP_MODEL at it.`,
      );
    }
  } else {
    throw new Error(`NIGHTSHIFT_CLIP_MODEL=${setting}: neither a model folder nor a Hub id (org/name)`);
  }
  log.info({ model: loaded.id, dim: loaded.embedder.dim, fastPreprocessing: loaded.embedder.fastPreprocessing }, 'CLIP model loaded');
  return loaded;
}

/** Whether the id names the built-in test model. */
export const isTestModel = (id: string) => id.startsWith(`${TINY_CLIP_NAME}@`);

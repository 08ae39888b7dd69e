/**
 * ClipEmbedder: text and image embeddings from a CLIP-layout model folder
 * through transformers.js (v4) and onnxruntime-node, fully offline.
 *
 * Works with the built-in nightshift-tiny-clip and with the public ONNX
 * exports of real CLIP models (e.g. openai/clip-vit-base-patch32 laid out as
 * config.json, tokenizer*.json, preprocessor_config.json, onnx/*.onnx).
 *
 * Loading: the folder is always passed as an *absolute* path together with
 * `local_files_only: true`. transformers.js only prefixes `env.localModelPath`
 * to ids that look like Hub ids ("name" or "org/name"); an absolute path is
 * read as-is and never goes to the network, and no global `env` is touched.
 * `loadFromHub` is the one deliberate exception (a Hub id, where allowed).
 *
 * Images: preprocessed by clip-preprocess.ts (a fused fast path for a plain
 * CLIPImageProcessor), else by the model's own processor.
 */
import path from 'node:path';
import { AutoProcessor, AutoTokenizer, CLIPTextModelWithProjection, CLIPVisionModelWithProjection, env, RawImage, Tensor } from '@huggingface/transformers';
import type { PreTrainedModel, PreTrainedTokenizer, Processor } from '@huggingface/transformers';
import { fastRecipe, prepareFast, type FastRecipe, type PreparedImage } from './clip-preprocess.js';
import { normalise } from './vectors.js';

// What callers imported from here before the split by concern.
export { bilinearDown } from './resample.js';
export { decodePlainPng, plainPngSize } from './png-decode.js';
export { cosine, normalise } from './vectors.js';
export type { PreparedImage } from './clip-preprocess.js';

export interface ClipEmbedderOptions {
  /** Images per forward pass of the vision model (bounds memory for real CLIP). */
  imageBatchSize?: number;
  /** Texts per forward pass of the text model. */
  textBatchSize?: number;
  /** 'auto' (default) uses the fused sharp path when the preprocessor allows it; 'processor' always uses transformers.js's. */
  preprocess?: 'auto' | 'processor';
  /**
   * onnxruntime intra-op threads per forward pass (default: onnxruntime's,
   * one per core). 1 suits callers that run several batches at once.
   */
  threads?: number;
  /** Let onnxruntime's idle threads spin-wait (its default); false saves CPU between small batches. */
  spinning?: boolean;
}

export interface HubOptions extends ClipEmbedderOptions {
  /** Where downloaded files are cached. */
  cacheDir: string;
  /** Hub base URL (HF_ENDPOINT); the default is the public Hub. */
  remoteHost?: string | undefined;
  /** Give up (and throw) after this long; a blocked network can otherwise hang. */
  timeoutMs?: number;
}

export class ClipEmbedder {
  /** Embedding dimension (projection_dim); 0 until loaded. */
  dim = 0;
  folder = '';
  private tokenizer: PreTrainedTokenizer | null = null;
  private processor: Processor | null = null;
  private textModel: PreTrainedModel | null = null;
  private visionModel: PreTrainedModel | null = null;
  private fast: FastRecipe | undefined;
  private readonly imageBatchSize: number;
  private readonly textBatchSize: number;
  private readonly preprocessMode: 'auto' | 'processor';
  private readonly sessionOptions: Record<string, unknown>;

  constructor(options: ClipEmbedderOptions = {}) {
    this.imageBatchSize = Math.max(1, options.imageBatchSize ?? 16);
    this.textBatchSize = Math.max(1, options.textBatchSize ?? 64);
    this.preprocessMode = options.preprocess ?? 'auto';
    this.sessionOptions = {
      ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
      ...(options.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } } : {}),
    };
  }

  /** Creates an embedder and loads the model folder. */
  static async load(folder: string, options: ClipEmbedderOptions = {}): Promise<ClipEmbedder> {
    return new ClipEmbedder(options).load(folder);
  }

  /**
   * Loads a Hub model id (e.g. `Xenova/clip-vit-base-patch32`), downloading
   * into `cacheDir`. Only for machines whose network allows it; throws a
   * readable error (after `timeoutMs`) where it does not.
   */
  static async loadFromHub(id: string, options: HubOptions): Promise<ClipEmbedder> {
    if (!/^[\w.-]+\/[\w.-]+$/.test(id)) throw new Error(`not a Hub model id: ${JSON.stringify(id)}`);
    const e = new ClipEmbedder(options);
    // transformers.js reads the Hub host from its global env only.
    if (options.remoteHost) env.remoteHost = options.remoteHost.endsWith('/') ? options.remoteHost : `${options.remoteHost}/`;
    const opts = { local_files_only: false, cache_dir: options.cacheDir } as const;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${options.timeoutMs ?? 60_000} ms`)), options.timeoutMs ?? 60_000);
    });
    try {
      await Promise.race([e.loadWith(id, opts), timeout]);
    } catch (err) {
      throw new Error(`cannot load CLIP model ${id} from the Hub (${env.remoteHost}): ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    e.folder = id;
    return e;
  }

  /** Loads (or reloads) the model folder into this embedder. */
  async load(folder: string): Promise<this> {
    // Absolute, so transformers.js never reads it as a Hub id (see file comment).
    const dir = path.resolve(folder);
    await this.loadWith(dir, { local_files_only: true });
    this.folder = dir;
    return this;
  }

  private async loadWith(id: string, opts: { local_files_only: boolean; cache_dir?: string }): Promise<void> {
    const [tokenizer, processor, textModel, visionModel] = await Promise.all([
      AutoTokenizer.from_pretrained(id, opts),
      AutoProcessor.from_pretrained(id, opts),
      CLIPTextModelWithProjection.from_pretrained(id, { ...opts, dtype: 'fp32', device: 'cpu', session_options: this.sessionOptions }),
      CLIPVisionModelWithProjection.from_pretrained(id, { ...opts, dtype: 'fp32', device: 'cpu', session_options: this.sessionOptions }),
    ]);
    await this.dispose();
    this.tokenizer = tokenizer;
    this.processor = processor;
    this.textModel = textModel;
    this.visionModel = visionModel;
    this.fast = this.preprocessMode === 'auto' ? fastRecipe(processor) : undefined;
    const config = textModel.config as unknown as { projection_dim?: number };
    this.dim = typeof config.projection_dim === 'number' ? config.projection_dim : 0;
    if (!this.dim) this.dim = (await this.embedTexts(['']))[0]!.length; // unusual config: measure it
  }

  /** True when images take the fused sharp path. */
  get fastPreprocessing(): boolean {
    return this.fast !== undefined;
  }

  /** One L2-normalised embedding per text, in order. */
  async embedTexts(texts: readonly string[]): Promise<Float32Array[]> {
    const tokenizer = this.tokenizer;
    const model = this.textModel;
    if (!tokenizer || !model) throw new Error('ClipEmbedder: not loaded');
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += this.textBatchSize) {
      const batch = texts.slice(i, i + this.textBatchSize);
      // padding + truncation give one rectangular [batch, seq] tensor.
      const inputs = tokenizer([...batch], { padding: true, truncation: true });
      const { text_embeds } = (await model(inputs)) as { text_embeds: Tensor };
      out.push(...rows(text_embeds, batch.length));
    }
    return out;
  }

  /** One L2-normalised embedding per image (PNG, WebP, JPEG… bytes), in order. */
  async embedImages(images: readonly (Buffer | Uint8Array)[]): Promise<Float32Array[]> {
    const prepared = await Promise.all(
      images.map(async (bytes, i) => {
        try {
          return await this.prepareImage(bytes);
        } catch (err) {
          throw new Error(`ClipEmbedder: cannot decode image ${i}: ${(err as Error).message}`, { cause: err });
        }
      }),
    );
    return this.embedPrepared(prepared);
  }

  /**
   * Decodes and preprocesses one image (the CPU work before the model), so a
   * caller can overlap it with other batches and drop images that fail alone.
   */
  async prepareImage(bytes: Buffer | Uint8Array): Promise<PreparedImage> {
    if (!this.processor) throw new Error('ClipEmbedder: not loaded');
    if (this.fast) {
      const p = await prepareFast(bytes, this.fast);
      if (p) return p;
    }
    const raw = await RawImage.fromBlob(new Blob([new Uint8Array(bytes)]));
    const { pixel_values } = (await this.processor(raw)) as { pixel_values: Tensor };
    const [, , height, width] = pixel_values.dims as number[];
    return { pixels: pixel_values.data as Float32Array, height: height!, width: width! };
  }

  /** Embeds preprocessed images (all of one size), in forward passes of imageBatchSize. */
  async embedPrepared(images: readonly PreparedImage[]): Promise<Float32Array[]> {
    const model = this.visionModel;
    if (!model) throw new Error('ClipEmbedder: not loaded');
    const out: Float32Array[] = [];
    for (let i = 0; i < images.length; i += this.imageBatchSize) {
      const batch = images.slice(i, i + this.imageBatchSize);
      const { height, width } = batch[0]!;
      const per = 3 * height * width;
      const data = new Float32Array(per * batch.length);
      batch.forEach((img, j) => {
        if (img.height !== height || img.width !== width || img.pixels.length !== per) throw new Error('ClipEmbedder: prepared images differ in size');
        data.set(img.pixels, j * per);
      });
      const pixel_values = new Tensor('float32', data, [batch.length, 3, height, width]);
      const { image_embeds } = (await model({ pixel_values })) as { image_embeds: Tensor };
      out.push(...rows(image_embeds, batch.length));
    }
    return out;
  }

  /** Releases the onnxruntime sessions. */
  async dispose(): Promise<void> {
    const models = [this.textModel, this.visionModel];
    this.textModel = this.visionModel = null;
    this.tokenizer = null;
    this.processor = null;
    await Promise.all(models.map((m) => m?.dispose()));
  }
}

/** Splits a [n, D] tensor into n normalised copies. */
function rows(t: Tensor, n: number): Float32Array[] {
  const dims = t.dims as number[];
  if (dims.length !== 2 || dims[0] !== n) throw new Error(`ClipEmbedder: expected embeddings [${n}, D], got [${dims.join(', ')}]`);
  const d = dims[1]!;
  const data = t.data as Float32Array;
  const out: Float32Array[] = [];
  for (let r = 0; r < n; r++) out.push(normalise(data.slice(r * d, (r + 1) * d)));
  return out;
}

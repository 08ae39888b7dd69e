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
 */
import path from 'node:path';
import {
  AutoProcessor,
  AutoTokenizer,
  CLIPTextModelWithProjection,
  CLIPVisionModelWithProjection,
  RawImage,
} from '@huggingface/transformers';
import type { PreTrainedModel, PreTrainedTokenizer, Processor, Tensor } from '@huggingface/transformers';

export interface ClipEmbedderOptions {
  /** Images per forward pass of the vision model (bounds memory for real CLIP). */
  imageBatchSize?: number;
  /** Texts per forward pass of the text model. */
  textBatchSize?: number;
}

export class ClipEmbedder {
  /** Embedding dimension (projection_dim); 0 until loaded. */
  dim = 0;
  folder = '';
  private tokenizer: PreTrainedTokenizer | null = null;
  private processor: Processor | null = null;
  private textModel: PreTrainedModel | null = null;
  private visionModel: PreTrainedModel | null = null;
  private readonly imageBatchSize: number;
  private readonly textBatchSize: number;

  constructor(options: ClipEmbedderOptions = {}) {
    this.imageBatchSize = Math.max(1, options.imageBatchSize ?? 16);
    this.textBatchSize = Math.max(1, options.textBatchSize ?? 64);
  }

  /** Creates an embedder and loads the model folder. */
  static async load(folder: string, options: ClipEmbedderOptions = {}): Promise<ClipEmbedder> {
    return new ClipEmbedder(options).load(folder);
  }

  /** Loads (or reloads) the model folder into this embedder. */
  async load(folder: string): Promise<this> {
    // Absolute, so transformers.js never reads it as a Hub id (see file comment).
    const dir = path.resolve(folder);
    const opts = { local_files_only: true } as const;
    const [tokenizer, processor, textModel, visionModel] = await Promise.all([
      AutoTokenizer.from_pretrained(dir, opts),
      AutoProcessor.from_pretrained(dir, opts),
      CLIPTextModelWithProjection.from_pretrained(dir, { ...opts, dtype: 'fp32', device: 'cpu' }),
      CLIPVisionModelWithProjection.from_pretrained(dir, { ...opts, dtype: 'fp32', device: 'cpu' }),
    ]);
    await this.dispose();
    this.tokenizer = tokenizer;
    this.processor = processor;
    this.textModel = textModel;
    this.visionModel = visionModel;
    this.folder = dir;
    const config = textModel.config as unknown as { projection_dim?: number };
    this.dim = typeof config.projection_dim === 'number' ? config.projection_dim : 0;
    if (!this.dim) this.dim = (await this.embedTexts(['']))[0]!.length; // unusual config: measure it
    return this;
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
    const processor = this.processor;
    const model = this.visionModel;
    if (!processor || !model) throw new Error('ClipEmbedder: not loaded');
    const out: Float32Array[] = [];
    for (let i = 0; i < images.length; i += this.imageBatchSize) {
      const batch = images.slice(i, i + this.imageBatchSize);
      const raw = await Promise.all(
        batch.map(async (bytes, j) => {
          try {
            // RawImage.fromBlob decodes with sharp under Node.
            return await RawImage.fromBlob(new Blob([new Uint8Array(bytes)]));
          } catch (err) {
            throw new Error(`ClipEmbedder: cannot decode image ${i + j}: ${(err as Error).message}`);
          }
        }),
      );
      const { pixel_values } = (await processor(raw)) as { pixel_values: Tensor };
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

/** In-place L2 normalisation; an all-zero vector stays zero. */
export function normalise(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i]! /= n;
  return v;
}

/** Dot product of two normalised vectors = cosine similarity. */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`cosine: length ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * The `upscale` backend: ×s super-resolution of an already rendered image with
 * an ONNX model (Real-ESRGAN layout) through the tiler. The result keeps every
 * text chunk of the source (the A1111 `parameters` above all, so the prompt
 * still travels with the image) and adds an A1111-style `postprocessing` chunk
 * naming the upscaler. A job may bring its own upscaler from the model
 * registry (RenderRequest.modelPath: its one .onnx file; the last two used stay
 * loaded). Without either, the job fails with a clear message: a
 * plain resize presented as super-resolution would be a lie.
 */
import path from 'node:path';
import sharp, { type OutputInfo } from 'sharp';
import { addPngTextChunk, hasPngSignature, readPngTextChunks } from '@nightshift/common';
import { RenderFailure, type Backend, type RenderProgress, type RenderRequest, type RenderResult } from './backend.js';
import { DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, TiledUpscaler } from '../upscale/tiler.js';
import { upscalerFile } from './model-source.js';
import { LruResources } from './onnx-lru.js';

export interface UpscaleBackendOptions {
  /** Path of the ONNX model; absent means "not configured" (jobs fail with a clear error). */
  modelPath?: string;
  /** Name recorded in the PNG and advertised to the coordinator (default: the file name without extension). */
  modelName?: string;
  tileSize?: number;
  overlap?: number;
  /** onnxruntime intra-op threads (0: onnxruntime's default). */
  threads?: number;
  /** Largest source accepted, in pixels (the ×4 result is 16× that, held in memory while encoding). */
  maxInputPixels?: number;
}

export const NO_MODEL_MESSAGE =
  'no upscale model is configured on this node: set upscale.model in the node config (NIGHTSHIFT_NODE_CONFIG) to a Real-ESRGAN-layout ONNX file; Nightshift does not fall back to a plain resize';

export class UpscaleBackend implements Backend {
  readonly name = 'upscale';
  readonly models: readonly string[];
  readonly modelName: string | undefined;
  private loading: Promise<TiledUpscaler> | undefined;
  /** Registry upscalers jobs brought (RenderRequest.modelPath), by folder: the last two used stay loaded, one in use is never released. */
  private readonly pulled = new LruResources<TiledUpscaler>(2, (folder) => this.loadPulled(folder), (u) => u.release());
  /** The job's model name for each pulled folder, for errors. */
  private readonly labels = new Map<string, string>();

  constructor(private readonly opts: UpscaleBackendOptions = {}) {
    this.modelName = opts.modelPath ? (opts.modelName ?? path.basename(opts.modelPath).replace(/\.onnx$/i, '')) : undefined;
    this.models = this.modelName ? [this.modelName] : [];
  }

  /** Loads the model once, on first use; a failed load is retried by the next job. */
  private model(): Promise<TiledUpscaler> {
    if (!this.opts.modelPath) return Promise.reject(new RenderFailure(NO_MODEL_MESSAGE));
    this.loading ??= TiledUpscaler.load(this.opts.modelPath, { threads: this.opts.threads ?? 0 }).catch((err: unknown) => {
      this.loading = undefined;
      throw new RenderFailure(`could not load upscale model ${this.opts.modelPath}: ${err instanceof Error ? err.message : String(err)}`);
    });
    return this.loading;
  }

  /** A registry upscaler (the job's pulled model): its one .onnx file; a failed load is retried by the next job. */
  private async loadPulled(folder: string): Promise<TiledUpscaler> {
    const label = this.labels.get(folder) ?? path.basename(folder);
    const file = await upscalerFile(folder, label);
    try {
      return await TiledUpscaler.load(file, { threads: this.opts.threads ?? 0 });
    } catch (err) {
      throw new RenderFailure(`could not load upscale model ${label}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async render(req: RenderRequest, onProgress: (p: RenderProgress) => void, signal: AbortSignal): Promise<RenderResult> {
    if (req.kind !== 'upscale') throw new RenderFailure(`the upscale backend only runs upscale jobs, got a ${req.kind} job`);
    // A job's registry model wins over the configured one, and is what the PNG names.
    const modelName = req.modelPath ? req.model : this.modelName;
    if (req.modelPath) this.labels.set(req.modelPath, req.model);
    const lease = req.modelPath ? await this.pulled.acquire(req.modelPath) : { value: await this.model(), release: () => {} };
    try {
      if (!req.loadInput) throw new RenderFailure('upscale job has no source image');
      const source = await req.loadInput();
      signal.throwIfAborted();
      const { png } = await upscalePng(lease.value, source, {
        tileSize: this.opts.tileSize ?? DEFAULT_TILE_SIZE,
        overlap: this.opts.overlap ?? DEFAULT_OVERLAP,
        maxInputPixels: this.opts.maxInputPixels ?? 2048 * 2048,
        modelName: modelName!,
        signal,
        onProgress,
      });
      // The tiler runs on onnxruntime's CPU provider (upscale/tiler.ts).
      return { png, model: modelName!, device: 'cpu' };
    } finally {
      lease.release();
    }
  }

  async close(): Promise<void> {
    const loading = this.loading;
    this.loading = undefined;
    const m = await loading?.catch(() => undefined);
    await m?.release();
    await this.pulled.closeAll();
  }
}

export interface UpscalePngOptions {
  tileSize: number;
  overlap: number;
  maxInputPixels: number;
  modelName: string;
  signal?: AbortSignal;
  onProgress?: (p: RenderProgress) => void;
}

/** Upscales encoded image bytes to a PNG carrying the source's text chunks plus the upscaler. */
export async function upscalePng(upscaler: TiledUpscaler, source: Buffer, opts: UpscalePngOptions): Promise<{ png: Buffer; scale: number }> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    const meta = await sharp(source).metadata();
    const pixels = (meta.width ?? 0) * (meta.height ?? 0);
    if (pixels > opts.maxInputPixels) {
      throw new RenderFailure(`source is ${meta.width}x${meta.height}, larger than this node's upscale limit of ${opts.maxInputPixels} pixels`);
    }
    // 8-bit sRGB, alpha kept when present; 16-bit sources are reduced to 8 bits.
    decoded = await sharp(source).toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    if (err instanceof RenderFailure) throw err;
    throw new RenderFailure(`source image cannot be decoded: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { width, height, channels } = decoded.info;
  if (channels !== 3 && channels !== 4) throw new RenderFailure(`source image has ${channels} channels after sRGB conversion; expected RGB or RGBA`);
  const rgb = channels === 3 ? new Uint8Array(decoded.data) : pickChannels(decoded.data, channels, [0, 1, 2]);
  const hasAlpha = channels === 4;
  const passes = hasAlpha ? 2 : 1;
  const tileOpts = (pass: number) => ({
    tileSize: opts.tileSize,
    overlap: opts.overlap,
    ...(opts.signal ? { signal: opts.signal } : {}),
    onTile: (done: number, total: number) => opts.onProgress?.({ step: pass * total + done, total: passes * total }),
  });
  const up = await upscaler.upscale({ data: rgb, width, height }, tileOpts(0));
  let raw: Buffer;
  let outChannels: 3 | 4 = 3;
  if (hasAlpha) {
    // Alpha goes through the model as a grey image, as Real-ESRGAN's own scripts do.
    const alpha = await upscaler.upscale({ data: pickChannels(decoded.data, 4, [3, 3, 3]), width, height }, tileOpts(1));
    raw = Buffer.alloc(up.width * up.height * 4);
    for (let i = 0, j = 0; i < raw.length; i += 4, j += 3) {
      raw[i] = up.data[j]!;
      raw[i + 1] = up.data[j + 1]!;
      raw[i + 2] = up.data[j + 2]!;
      raw[i + 3] = alpha.data[j]!;
    }
    outChannels = 4;
  } else {
    raw = Buffer.from(up.data.buffer, up.data.byteOffset, up.data.byteLength);
  }
  const scale = up.width / width;
  let png: Buffer = await sharp(raw, { raw: { width: up.width, height: up.height, channels: outChannels } }).png({ compressionLevel: 6 }).toBuffer();
  // addPngTextChunk puts each new chunk right after IHDR, so add in reverse to keep the source's order.
  const chunks = hasPngSignature(source) ? Object.entries(readPngTextChunks(source)) : [];
  const post = `Postprocess upscale by: ${scale}, Postprocess upscaler: ${opts.modelName}, Postprocess size: ${up.width}x${up.height}`;
  png = addPngTextChunk(png, 'postprocessing', post);
  for (const [k, v] of chunks.reverse()) if (k !== 'postprocessing') png = addPngTextChunk(png, k, v);
  return { png, scale };
}

function pickChannels(data: Buffer, channels: number, pick: readonly [number, number, number]): Uint8Array {
  const n = data.length / channels;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[i * 3] = data[i * channels + pick[0]]!;
    out[i * 3 + 1] = data[i * channels + pick[1]]!;
    out[i * 3 + 2] = data[i * channels + pick[2]]!;
  }
  return out;
}

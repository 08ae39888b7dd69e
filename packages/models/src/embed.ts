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
 * Images: for a plain CLIPImageProcessor, preprocessing skips the processor
 * (which makes four sharp round trips per image): plain 8-bit PNGs, the
 * farm's own output, are decoded here (zlib + row filters) and resampled in
 * JS with the same sampling as the processor's sharp `affine`; other images
 * take one sharp pipeline (decode + resize). Crop, rescale and normalise are
 * one pass into CHW floats. The indexer's hot path, about 3× faster; alpha
 * images and unusual configs still take the processor path.
 */
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import {
  AutoProcessor,
  AutoTokenizer,
  CLIPFeatureExtractor,
  CLIPImageProcessor,
  CLIPTextModelWithProjection,
  CLIPVisionModelWithProjection,
  env,
  RawImage,
  Tensor,
} from '@huggingface/transformers';
import type { PreTrainedModel, PreTrainedTokenizer, Processor } from '@huggingface/transformers';

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

/** One preprocessed image: CHW float pixels, ready to batch. */
export interface PreparedImage {
  pixels: Float32Array;
  height: number;
  width: number;
}

/** The resize/crop/normalise recipe of a plain CLIPImageProcessor, when the fused path can reproduce it. */
interface FastRecipe {
  resize: ((w: number, h: number) => [number, number]) | undefined;
  interpolator: 'nearest' | 'bilinear' | 'bicubic' | 'lanczos';
  crop: { width: number; height: number } | undefined;
  rescale: number | undefined;
  mean: [number, number, number] | undefined;
  std: [number, number, number] | undefined;
  /** Byte value → normalised float, per channel (rescale then normalise, as the processor does). */
  lut?: [Float32Array, Float32Array, Float32Array];
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

const INTERPOLATORS = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'bilinear', 5: 'bilinear' } as const;

/** The fused recipe when the processor is a plain CLIPImageProcessor we can reproduce exactly, else undefined. */
function fastRecipe(processor: Processor): FastRecipe | undefined {
  const ip = (processor as unknown as { image_processor?: unknown }).image_processor as Record<string, unknown> | undefined;
  const ctor: unknown = ip?.constructor;
  if (!ip || (ctor !== CLIPImageProcessor && ctor !== CLIPFeatureExtractor)) return undefined;
  if (ip.do_thumbnail || ip.do_crop_margin || ip.do_pad || ip.do_flip_channel_order || ip.size_divisibility !== undefined) return undefined;
  if (ip.do_convert_rgb === false) return undefined;
  const interpolator = INTERPOLATORS[ip.resample as keyof typeof INTERPOLATORS];
  if (!interpolator) return undefined;
  let resize: FastRecipe['resize'];
  if (ip.do_resize) {
    const size = ip.size as number | { shortest_edge?: number; longest_edge?: number; width?: number; height?: number } | undefined;
    const config = ip.config as { max_size?: number; keep_aspect_ratio?: boolean };
    // Same arithmetic as ImageProcessor.get_resize_output_image_size.
    const edges =
      typeof size === 'number'
        ? { short: size, long: config.max_size ?? size }
        : size && (size.shortest_edge !== undefined || size.longest_edge !== undefined)
          ? { short: size.shortest_edge, long: size.longest_edge }
          : undefined;
    if (edges) {
      resize = (w, h) => {
        const s = edges.short === undefined ? 1 : Math.max(edges.short / w, edges.short / h);
        const nw = w * s;
        const nh = h * s;
        const l = edges.long === undefined ? 1 : Math.min(edges.long / nw, edges.long / nh);
        return [Math.floor(Number((nw * l).toFixed(2))), Math.floor(Number((nh * l).toFixed(2)))];
      };
    } else if (typeof size === 'object' && size.width !== undefined && size.height !== undefined && !config.keep_aspect_ratio) {
      const { width, height } = size as { width: number; height: number };
      resize = () => [width, height];
    } else return undefined;
  }
  let crop: FastRecipe['crop'];
  if (ip.do_center_crop) {
    const c = ip.crop_size as number | { width: number; height: number } | undefined;
    if (c === undefined) return undefined;
    crop = typeof c === 'number' ? { width: c, height: c } : { width: c.width, height: c.height };
  }
  const triple = (v: unknown): [number, number, number] | undefined => {
    const a = Array.isArray(v) ? v : typeof v === 'number' ? [v, v, v] : undefined;
    return a && a.length === 3 && a.every((x) => typeof x === 'number') ? (a as [number, number, number]) : undefined;
  };
  let mean: FastRecipe['mean'];
  let std: FastRecipe['std'];
  if (ip.do_normalize) {
    mean = triple(ip.image_mean);
    std = triple(ip.image_std);
    if (!mean || !std) return undefined;
  }
  return { resize, interpolator, crop, rescale: ip.do_rescale ? (ip.rescale_factor as number) : undefined, mean, std };
}

/** Decode + resize in one sharp pipeline, then crop/rescale/normalise to CHW floats. Undefined: use the processor path. */
async function prepareFast(bytes: Buffer | Uint8Array, r: FastRecipe): Promise<PreparedImage | undefined> {
  const input = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The processor resizes from the decoded size, so the target needs the size
  // first: read straight from a plain PNG's header (the render farm's case), else from sharp.
  let w: number;
  let h: number;
  const png = plainPngSize(input);
  if (png) [w, h] = png;
  else {
    const meta = await sharp(input).metadata();
    if (!meta.width || !meta.height) return undefined;
    // Alpha would be premultiplied by sharp's resampler, unlike the processor (which drops it first).
    if (meta.hasAlpha || (meta.channels !== 3 && meta.channels !== 1)) return undefined;
    [w, h] = (meta.orientation ?? 1) >= 5 ? [meta.height, meta.width] : [meta.width, meta.height];
  }
  let raw: { data: Uint8Array; info: { width: number; height: number; channels: number } };
  const target = r.resize?.(w, h) ?? [w, h];
  const plain = png && r.interpolator === 'bilinear' && target[0] <= w && target[1] <= h ? decodePlainPng(input) : undefined;
  if (plain) {
    // libvips costs ~0.5 ms per call even for small PNGs (and its affine as
    // much again); zlib + unfiltering here, and resampling in JS with the
    // affine's sampling, is several times cheaper for the farm's own PNGs.
    raw = target[0] === w && target[1] === h ? plain : { data: bilinearDown(plain.data, plain.info, target[0], target[1]), info: { width: target[0], height: target[1], channels: plain.info.channels } };
  } else {
    let img = sharp(input).rotate();
    if (target[0] !== w || target[1] !== h) {
      img =
        r.interpolator === 'lanczos'
          ? img.resize({ width: target[0], height: target[1], fit: 'fill', kernel: 'lanczos3' })
          : img.affine([target[0] / w, 0, 0, target[1] / h], { interpolator: r.interpolator });
    }
    raw = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  }
  const { data, info } = raw;
  const ch = info.channels;
  if (ch !== 3 && ch !== 1) return undefined;
  let x0 = 0;
  let y0 = 0;
  let cw = info.width;
  let chh = info.height;
  if (r.crop && (r.crop.width !== info.width || r.crop.height !== info.height)) {
    if (r.crop.width > info.width || r.crop.height > info.height) return undefined; // the processor pads: rare, not reproduced
    x0 = Math.floor((info.width - r.crop.width) / 2);
    y0 = Math.floor((info.height - r.crop.height) / 2);
    cw = r.crop.width;
    chh = r.crop.height;
  }
  const plane = cw * chh;
  const out = new Float32Array(3 * plane);
  // Float32 rounding after each step, as the processor's Float32Array does.
  r.lut ??= [0, 1, 2].map((c) => {
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) {
      let p = r.rescale !== undefined ? Math.fround(r.rescale * v) : v;
      if (r.mean && r.std) p = Math.fround((p - r.mean[c]!) / r.std[c]!);
      t[v] = p;
    }
    return t;
  }) as [Float32Array, Float32Array, Float32Array];
  const [l0, l1, l2] = r.lut;
  for (let y = 0; y < chh; y++) {
    let src = ((y + y0) * info.width + x0) * ch;
    let dst = y * cw;
    for (let x = 0; x < cw; x++, dst++, src += ch) {
      const a = data[src]!;
      out[dst] = l0[a]!;
      out[plane + dst] = l1[ch === 3 ? data[src + 1]! : a]!;
      out[2 * plane + dst] = l2[ch === 3 ? data[src + 2]! : a]!;
    }
  }
  return { pixels: out, height: chh, width: cw };
}

/**
 * Bilinear downscale with libvips affine's sampling (output pixel x samples
 * input x·W/w, top-left aligned, weights in 1/64 steps, rounded): equal to
 * sharp's `affine(…, {interpolator: 'bilinear'})` for integer ratios and
 * within 3/255 otherwise. Exported for tests.
 */
export function bilinearDown(src: Uint8Array, info: { width: number; height: number; channels: number }, tw: number, th: number): Uint8Array {
  const { width: W, height: H, channels: ch } = info;
  const axes = (n: number, N: number) => {
    const lo = new Int32Array(n);
    const hi = new Int32Array(n);
    const t = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const f = (i * N) / n;
      const i0 = Math.floor(f);
      lo[i] = Math.min(N - 1, i0);
      hi[i] = Math.min(N - 1, i0 + 1);
      t[i] = Math.round((f - i0) * 64);
    }
    return { lo, hi, t };
  };
  const xs = axes(tw, W);
  const ys = axes(th, H);
  const out = new Uint8Array(tw * th * ch);
  let o = 0;
  for (let y = 0; y < th; y++) {
    const r0 = ys.lo[y]! * W;
    const r1 = ys.hi[y]! * W;
    const ty = ys.t[y]!;
    for (let x = 0; x < tw; x++) {
      const tx = xs.t[x]!;
      const w00 = (64 - tx) * (64 - ty);
      const w01 = tx * (64 - ty);
      const w10 = (64 - tx) * ty;
      const w11 = tx * ty;
      const p00 = (r0 + xs.lo[x]!) * ch;
      const p01 = (r0 + xs.hi[x]!) * ch;
      const p10 = (r1 + xs.lo[x]!) * ch;
      const p11 = (r1 + xs.hi[x]!) * ch;
      for (let c = 0; c < ch; c++) out[o++] = (w00 * src[p00 + c]! + w01 * src[p01 + c]! + w10 * src[p10 + c]! + w11 * src[p11 + c]! + 2048) >> 12;
    }
  }
  return out;
}

/**
 * Decodes an 8-bit grey or RGB, non-interlaced PNG (what sharp writes for the
 * farm) with zlib and the five PNG row filters; undefined for anything else.
 * Exported for tests (which compare it with sharp's decoder).
 */
export function decodePlainPng(b: Buffer): { data: Uint8Array; info: { width: number; height: number; channels: number } } | undefined {
  const size = plainPngSize(b);
  if (!size || b[28] !== 0) return undefined; // interlaced: leave it to sharp
  const [w, h] = size;
  const ch = b[25] === 2 ? 3 : 1;
  const idat: Buffer[] = [];
  for (let off = 8; off + 12 <= b.length; ) {
    const len = b.readUInt32BE(off);
    const type = b.toString('latin1', off + 4, off + 8);
    if (type === 'IDAT') idat.push(b.subarray(off + 8, off + 8 + len));
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const stride = w * ch;
  let raw: Buffer;
  try {
    raw = zlib.inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat));
  } catch {
    return undefined; // corrupt: let sharp produce the error message
  }
  if (raw.length < h * (stride + 1)) return undefined;
  const out = new Uint8Array(h * stride);
  for (let y = 0; y < h; y++) {
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    const up = dst - stride;
    const filter = raw[src - 1];
    if (filter === 0 || (filter === 2 && y === 0)) {
      out.set(raw.subarray(src, src + stride), dst);
    } else if (filter === 1) {
      for (let i = 0; i < stride; i++) out[dst + i] = raw[src + i]! + (i >= ch ? out[dst + i - ch]! : 0);
    } else if (filter === 2) {
      for (let i = 0; i < stride; i++) out[dst + i] = raw[src + i]! + out[up + i]!;
    } else if (filter === 3) {
      for (let i = 0; i < stride; i++) out[dst + i] = raw[src + i]! + (((i >= ch ? out[dst + i - ch]! : 0) + (y ? out[up + i]! : 0)) >> 1);
    } else if (filter === 4) {
      for (let i = 0; i < stride; i++) {
        const a = i >= ch ? out[dst + i - ch]! : 0;
        const u = y ? out[up + i]! : 0;
        const c = i >= ch && y ? out[up + i - ch]! : 0;
        const pa = Math.abs(u - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + u - 2 * c);
        out[dst + i] = raw[src + i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? u : c);
      }
    } else return undefined;
  }
  return { data: out, info: { width: w, height: h, channels: ch } };
}

/**
 * [width, height] of an 8-bit grey or RGB PNG with no transparency and no
 * EXIF chunk (so sharp's auto-orient is a no-op); undefined for anything else.
 */
export function plainPngSize(b: Buffer): [number, number] | undefined {
  if (b.length < 33 || b.readUInt32BE(0) !== 0x89504e47 || b.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  const depth = b[24];
  const colour = b[25];
  if (depth !== 8 || (colour !== 0 && colour !== 2)) return undefined;
  for (let off = 8; off + 8 <= b.length; ) {
    const type = b.toString('latin1', off + 4, off + 8);
    if (type === 'IDAT') return [b.readUInt32BE(16), b.readUInt32BE(20)];
    if (type === 'tRNS' || type === 'eXIf') return undefined;
    off += 12 + b.readUInt32BE(off);
  }
  return undefined;
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

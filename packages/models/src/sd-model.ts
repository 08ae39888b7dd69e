/**
 * A diffusers ONNX export opened for inference: onnxruntime-node sessions
 * for the text encoder, UNet and VAE (CPU by default, or the execution
 * providers asked for, e.g. ['cuda', 'cpu']), the folder's tokenizer, and
 * small typed wrappers that hide what differs between exports (int32 or
 * int64 ids, fp16 or fp32 tensors, the timestep's dtype and rank, the VAE
 * encoder's output) behind float32 arrays.
 *
 * decode and encode work in the VAE's own latent space, as the exported
 * graphs do: the sampler's latents are those times `scalingFactor` (0.18215
 * for SD 1.x/2.x, read from vae_decoder/config.json), so divide before
 * decode and multiply after encode (@nightshift/diffusion's unscaleForDecode
 * and scaleAfterEncode take the factor). Images are NCHW in the VAE's range,
 * about −1…1.
 */
import * as ort from 'onnxruntime-node';
import { float16Bits, fromFloat16, toFloat16 } from './float16.js';
import { inspectSdFolder, SdModelError, type SdComponent, type SdFolder } from './sd-folder.js';
import { checkTextEncoder, checkUnet, checkVaeDecoder, checkVaeEncoder, IoChecker, type FloatType, type TextEncoderIo, type UnetIo, type VaeDecoderIo, type VaeEncoderIo } from './sd-io.js';
import { SdTokenizer } from './sd-tokenize.js';

export interface SdLoadOptions {
  /** onnxruntime execution providers in order of preference (default ['cpu']); 'cuda' needs onnxruntime-node's CUDA build. */
  executionProviders?: readonly string[];
  /** Intra-op threads per session (default: onnxruntime's, one per core). */
  threads?: number;
  /** Open vae_encoder/ when present (default true); txt2img-only callers can skip it. */
  vaeEncoder?: boolean;
}

/** A float32 tensor: row-major data and its dims. */
export interface FloatTensor {
  data: Float32Array;
  dims: readonly number[];
}

export interface TextEncoding {
  /** last_hidden_state [batch, 77, hidden]: what the UNet attends to. */
  hidden: FloatTensor;
  /** pooler_output [batch, hidden], when the export has it. */
  pooled: FloatTensor | undefined;
}

/** The execution providers this onnxruntime-node build knows (bundled: usable without extra downloads). */
export function onnxExecutionProviders(): { name: string; bundled: boolean }[] {
  return ort.listSupportedBackends().map(({ name, bundled }) => ({ name, bundled }));
}

const SD_LATENT_CHANNELS = 4;
/** onnxruntime-node ships the CUDA provider as a separate download, fetched at install time only when asked. */
const CUDA_HINT = ' (the CUDA execution provider needs onnxruntime-node installed with its CUDA 12 binaries: `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`, plus CUDA 12 and cuDNN 9 on the machine)';
const SD_SCALING_FACTOR = 0.18215;

type Sessions = Partial<Record<SdComponent, ort.InferenceSession>>;

function count(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function floatFeed(type: FloatType, data: Float32Array, dims: readonly number[]): ort.Tensor {
  return type === 'float16' ? new ort.Tensor('float16', toFloat16(data), dims) : new ort.Tensor('float32', data, dims);
}

/** A float output as float32 (float16 arrives as bit patterns, or as a Float16Array where the runtime has one). */
function floatResult(t: ort.Tensor): FloatTensor {
  const dims = [...t.dims];
  if (t.type === 'float32') return { data: t.data as Float32Array, dims };
  if (t.type === 'float16') return { data: t.data instanceof Uint16Array ? fromFloat16(t.data) : Float32Array.from(t.data as ArrayLike<number>), dims };
  throw new Error(`expected a float tensor, got ${t.type}`);
}

export class SdModel {
  private readonly hiddenFeeds = new WeakMap<Float32Array, ort.Tensor>();

  private constructor(
    readonly folder: SdFolder,
    readonly tokenizer: SdTokenizer,
    private readonly sessions: Sessions,
    private readonly io: { text: TextEncoderIo; unet: UnetIo; vaeDecoder: VaeDecoderIo; vaeEncoder: VaeEncoderIo | undefined },
    /** Text hidden size (SD 1.x 768, SD 2.x 1024). */
    readonly hiddenSize: number,
    /** The VAE's scaling factor (vae_decoder/config.json, else SD's 0.18215). */
    readonly scalingFactor: number,
    readonly executionProviders: readonly string[],
  ) {}

  /** Checks the folder, opens every session and the tokenizer, and checks their interfaces. */
  static async load(folder: string, options: SdLoadOptions = {}): Promise<SdModel> {
    const f = await inspectSdFolder(folder);
    const providers = options.executionProviders?.length ? [...options.executionProviders] : ['cpu'];
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: providers,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
    };
    const components = (Object.keys(f.models) as SdComponent[]).filter((c) => c !== 'vae_encoder' || options.vaeEncoder !== false);
    const opened = await Promise.allSettled(components.map((c) => ort.InferenceSession.create(f.models[c]!, sessionOptions)));
    const sessions: Sessions = {};
    opened.forEach((r, i) => {
      if (r.status === 'fulfilled') sessions[components[i]!] = r.value;
    });
    const release = () => Promise.allSettled(Object.values(sessions).map((s) => s.release()));
    try {
      const failed = opened.findIndex((r) => r.status === 'rejected');
      if (failed >= 0) {
        const reason = (opened[failed] as PromiseRejectedResult).reason as Error;
        const via = providers.join(', ') === 'cpu' ? '' : ` with execution providers ${providers.join(', ')}`;
        const hint = providers.includes('cuda') ? CUDA_HINT : '';
        throw new SdModelError(`onnxruntime cannot open it${via}: ${reason.message}${hint}`, f.dir, `${components[failed]}/model.onnx`, { cause: reason });
      }
      let tokenizer: SdTokenizer;
      try {
        tokenizer = await SdTokenizer.load(f.tokenizerDir);
      } catch (err) {
        throw new SdModelError(`cannot load the tokenizer: ${(err as Error).message}`, f.dir, 'tokenizer/tokenizer.json', { cause: err });
      }

      const checker = (c: SdComponent) => new IoChecker(f.dir, `${c}/model.onnx`, sessions[c]!);
      const text = checkTextEncoder(checker('text_encoder'), tokenizer.maxLength);
      const configured = f.configs.text_encoder?.hidden_size;
      const hidden = text.hidden ?? (typeof configured === 'number' ? configured : undefined);
      const unetChannels = f.configs.unet?.in_channels;
      const latentChannels = typeof unetChannels === 'number' ? unetChannels : SD_LATENT_CHANNELS;
      if (latentChannels !== SD_LATENT_CHANNELS) {
        throw new SdModelError(`in_channels is ${latentChannels}; only ${SD_LATENT_CHANNELS}-channel (text-to-image) UNets are supported`, f.dir, 'unet/config.json');
      }
      const unet = checkUnet(checker('unet'), latentChannels, hidden);
      const vaeDecoder = checkVaeDecoder(checker('vae_decoder'), latentChannels);
      const vaeEncoder = sessions.vae_encoder ? checkVaeEncoder(checker('vae_encoder'), latentChannels) : undefined;
      if (hidden === undefined) throw new SdModelError('the hidden size is neither declared by last_hidden_state nor in text_encoder/config.json', f.dir, 'text_encoder/model.onnx');
      const scaling = f.configs.vae_decoder?.scaling_factor;
      return new SdModel(f, tokenizer, sessions, { text, unet, vaeDecoder, vaeEncoder }, hidden, typeof scaling === 'number' ? scaling : SD_SCALING_FACTOR, providers);
    } catch (err) {
      await release();
      throw err;
    }
  }

  /** Tokens per prompt (77). */
  get maxTokens(): number {
    return this.tokenizer.maxLength;
  }

  /** Float precision of the UNet's inputs: fp16 exports want (and get) float16 tensors. */
  get precision(): 'fp32' | 'fp16' {
    return this.io.unet.sampleType === 'float16' ? 'fp16' : 'fp32';
  }

  get hasVaeEncoder(): boolean {
    return this.io.vaeEncoder !== undefined;
  }

  /** Whether the UNet wants a guidance embedding (LCM-distilled models). */
  get timestepCondDim(): number | undefined {
    return this.io.unet.timestepCond?.dim;
  }

  private async run(c: SdComponent, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.ReturnType> {
    const session = this.sessions[c];
    if (!session) throw new SdModelError('not loaded', this.folder.dir, `${c}/model.onnx`);
    try {
      return await session.run(feeds);
    } catch (err) {
      throw new SdModelError(`inference failed: ${(err as Error).message}`, this.folder.dir, `${c}/model.onnx`, { cause: err });
    }
  }

  private fail(c: SdComponent, message: string): never {
    throw new SdModelError(message, this.folder.dir, `${c}/model.onnx`);
  }

  /** Tokenizes prompts to [prompts.length, 77] ids. */
  tokenize(prompts: readonly string[]): Int32Array {
    return this.tokenizer.encode(prompts);
  }

  /** ids: [batch, 77] row-major (from tokenize). */
  async encodeText(ids: Int32Array | readonly number[]): Promise<TextEncoding> {
    const seq = this.maxTokens;
    if (ids.length === 0 || ids.length % seq !== 0) this.fail('text_encoder', `input_ids: ${ids.length} ids is not a whole number of ${seq}-token rows`);
    const dims = [ids.length / seq, seq];
    const feed = this.io.text.idsType === 'int32' ? new ort.Tensor('int32', Int32Array.from(ids), dims) : new ort.Tensor('int64', BigInt64Array.from(Array.from(ids, (v) => BigInt(v))), dims);
    const out = await this.run('text_encoder', { input_ids: feed });
    const hidden = floatResult(out.last_hidden_state!);
    const pooledName = this.io.text.pooled;
    return { hidden, pooled: pooledName && out[pooledName] ? floatResult(out[pooledName]) : undefined };
  }

  private timestepFeed(t: number): ort.Tensor {
    const { timestepType: type, timestepRank: rank } = this.io.unet;
    const dims = rank === 0 ? [] : [1];
    // A [1] timestep broadcasts over the batch in real exports, as in diffusers' ONNX pipeline.
    switch (type) {
      case 'float32':
        return new ort.Tensor('float32', Float32Array.of(t), dims);
      case 'float16':
        return new ort.Tensor('float16', Uint16Array.of(float16Bits(t)), dims);
      case 'int64': // numpy's astype(int64) truncates, as diffusers' pipeline feeds it
        return new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.trunc(t))), dims);
      case 'int32':
        return new ort.Tensor('int32', Int32Array.of(Math.trunc(t)), dims);
    }
  }

  /**
   * The text encoding is the same at every step of an image: an fp16 export's
   * copy is converted once, not once per step (a sampler passes the same
   * tensor each step; a new encoding is a new array and a new entry).
   */
  private hiddenFeed(type: FloatType, hidden: FloatTensor): ort.Tensor {
    let feed = this.hiddenFeeds.get(hidden.data);
    if (!feed) {
      feed = floatFeed(type, hidden.data, hidden.dims);
      this.hiddenFeeds.set(hidden.data, feed);
    }
    return feed;
  }

  /**
   * One UNet evaluation: sample [batch, 4, h, w] (already scaled by the
   * scheduler's scale_model_input), timestep t (as the scheduler gives it),
   * hidden [batch, 77, hiddenSize] → the model's prediction, same shape as sample.
   */
  async unet(sample: FloatTensor, t: number, hidden: FloatTensor, timestepCond?: FloatTensor): Promise<FloatTensor> {
    const io = this.io.unet;
    const [batch, channels, h, w] = sample.dims;
    if (sample.dims.length !== 4 || channels !== SD_LATENT_CHANNELS || count(sample.dims) !== sample.data.length) {
      this.fail('unet', `sample: expected [batch, ${SD_LATENT_CHANNELS}, h, w] with matching data, got [${sample.dims.join(', ')}] and ${sample.data.length} values`);
    }
    if (hidden.dims.length !== 3 || hidden.dims[0] !== batch || hidden.dims[2] !== this.hiddenSize || count(hidden.dims) !== hidden.data.length) {
      this.fail('unet', `encoder_hidden_states: expected [${batch}, ${this.maxTokens}, ${this.hiddenSize}], got [${hidden.dims.join(', ')}] and ${hidden.data.length} values`);
    }
    const feeds: Record<string, ort.Tensor> = {
      sample: floatFeed(io.sampleType, sample.data, [batch!, channels, h!, w!]),
      timestep: this.timestepFeed(t),
      encoder_hidden_states: this.hiddenFeed(io.hiddenType, hidden),
    };
    if (io.timestepCond) {
      if (!timestepCond) this.fail('unet', 'this UNet takes timestep_cond (an LCM guidance embedding); none was given');
      feeds.timestep_cond = floatFeed(io.timestepCond.type, timestepCond.data, timestepCond.dims);
    }
    const out = await this.run('unet', feeds);
    return floatResult(out.out_sample!);
  }

  /** VAE latents [batch, 4, h, w] (the sampler's divided by scalingFactor) → image [batch, 3, 8h, 8w]. */
  async decode(latents: FloatTensor): Promise<FloatTensor> {
    if (latents.dims.length !== 4 || latents.dims[1] !== SD_LATENT_CHANNELS || count(latents.dims) !== latents.data.length) {
      this.fail('vae_decoder', `latent_sample: expected [batch, ${SD_LATENT_CHANNELS}, h, w] with matching data, got [${latents.dims.join(', ')}] and ${latents.data.length} values`);
    }
    const out = await this.run('vae_decoder', { latent_sample: floatFeed(this.io.vaeDecoder.inType, latents.data, latents.dims) });
    return floatResult(out.sample!);
  }

  /**
   * Image [batch, 3, H, W] in −1…1 (H, W multiples of 8) → VAE latents
   * [batch, 4, H/8, W/8] (multiply by scalingFactor for the sampler). Exports that return the
   * distribution (latent_parameters) give its mean, or mean + σ·noise when
   * `noise` (standard normal, one value per latent) is given, as diffusers'
   * latent_dist.sample(generator) does.
   */
  async encode(image: FloatTensor, noise?: Float32Array): Promise<FloatTensor> {
    const io = this.io.vaeEncoder;
    if (!io) this.fail('vae_encoder', 'no VAE encoder is loaded (the folder has none, or it was loaded with vaeEncoder: false); img2img needs one');
    const [, channels, h, w] = image.dims;
    if (image.dims.length !== 4 || channels !== 3 || h! % 8 !== 0 || w! % 8 !== 0 || count(image.dims) !== image.data.length) {
      this.fail('vae_encoder', `sample: expected [batch, 3, H, W] with H and W multiples of 8 and matching data, got [${image.dims.join(', ')}] and ${image.data.length} values`);
    }
    const out = await this.run('vae_encoder', { sample: floatFeed(io.inType, image.data, image.dims) });
    if (io.output === 'latent_sample') return floatResult(out.latent_sample!);
    // latent_parameters [B, 8, h, w]: per image, 4 mean channels then 4 log-variance channels.
    const p = floatResult(out.latent_parameters!);
    const [b, c2, lh, lw] = p.dims as [number, number, number, number];
    const c = c2 / 2;
    const plane = c * lh * lw;
    if (noise && noise.length !== b * plane) this.fail('vae_encoder', `noise: expected ${b * plane} values, got ${noise.length}`);
    const z = new Float32Array(b * plane);
    for (let i = 0; i < b; i++) {
      for (let j = 0; j < plane; j++) {
        const mean = p.data[i * 2 * plane + j]!;
        const logvar = Math.min(20, Math.max(-30, p.data[i * 2 * plane + plane + j]!));
        z[i * plane + j] = noise ? mean + Math.exp(0.5 * logvar) * noise[i * plane + j]! : mean;
      }
    }
    return { data: z, dims: [b, c, lh, lw] };
  }

  /** Releases the onnxruntime sessions. */
  async release(): Promise<void> {
    await Promise.allSettled(Object.values(this.sessions).map((s) => s.release()));
  }
}

/**
 * One Stable Diffusion render's latent, as diffusers' StableDiffusionPipeline
 * (and its img2img sibling) computes it, over an SdModel:
 *   text → hidden states ([negative; prompt] when guidance > 1),
 *   x = torch.randn(seed) · initNoiseSigma (img2img: addNoise(VAE(init)·f, randn) at the start step),
 *   each step: ε = UNet(scaleModelInput(x)) (one batched cond/uncond pass), CFG, scheduler step.
 * The same TorchGenerator then draws the step noise ancestral samplers ask for,
 * as a CPU generator passed to diffusers does. Several seeds of one prompt
 * run as one UNet batch, each image drawing from its own generator (diffusers
 * with a list of generators), so image k equals a batch of one with its seed.
 */
import {
  batchNoise,
  combineGuidance,
  createScheduler,
  duplicateForGuidance,
  guidanceScaleEmbedding,
  img2imgStartIndex,
  scaleAfterEncode,
  TorchGenerator,
  usesGuidance,
  type SamplerName,
  type SchedulerConfig,
} from '@nightshift/diffusion';
import type { FloatTensor, SdModel } from '@nightshift/models';

export interface SampleInput {
  model: SdModel;
  prompt: string;
  negativePrompt: string;
  /** One image per seed, all in one UNet batch. */
  seeds: readonly number[];
  width: number;
  height: number;
  steps: number;
  guidance: number;
  sampler: SamplerName;
  schedulerConfig: SchedulerConfig;
  /** img2img: the init image [1, 3, H, W] in −1…1 (every image of the batch starts from it) and how much of the schedule to run. */
  init?: { image: FloatTensor; strength: number };
  signal: AbortSignal;
  /** After each step run: 1-based step, steps to run, the model's x̂₀ estimate [B, 4, h, w] (for previews). */
  onStep?: (step: number, total: number, denoised: Float32Array) => Promise<void> | void;
  /** Accumulates where the time goes (benchmarks). */
  timing?: RenderTiming;
}

/** Milliseconds per part of a render: model calls (SdModel's wrappers around session.run), the sampler's own math, previews, PNG. */
export interface RenderTiming {
  modelMs: number;
  unetMs: number;
  unetCalls: number;
  schedulerMs: number;
  previewMs: number;
  pngMs: number;
}

export const newRenderTiming = (): RenderTiming => ({ modelMs: 0, unetMs: 0, unetCalls: 0, schedulerMs: 0, previewMs: 0, pngMs: 0 });

export interface SampleResult {
  /** The final latents [B, 4, h, w] in the sampler's (scaled) space. */
  latent: Float32Array;
  dims: [number, number, number, number];
  /** Whether the negative prompt took part (classifier-free guidance ran). */
  guided: boolean;
}

async function timed<T>(timing: SampleInput['timing'], unet: boolean, f: () => Promise<T>): Promise<T> {
  if (!timing) return f();
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    const ms = performance.now() - t0;
    timing.modelMs += ms;
    if (unet) {
      timing.unetMs += ms;
      timing.unetCalls++;
    }
  }
}

function repeat(data: Float32Array, times: number): Float32Array {
  const out = new Float32Array(data.length * times);
  for (let k = 0; k < times; k++) out.set(data, k * data.length);
  return out;
}

export async function sampleLatent(input: SampleInput): Promise<SampleResult> {
  const { model, signal, timing } = input;
  const images = input.seeds.length;
  if (images < 1) throw new RangeError('sampleLatent needs at least one seed');
  const dims: [number, number, number, number] = [images, 4, input.height / 8, input.width / 8];
  const numel = images * 4 * dims[2] * dims[3];
  // LCM-distilled UNets take guidance as an embedding and run without the unconditional pass.
  const condDim = model.timestepCondDim;
  const guided = usesGuidance(input.guidance) && condDim === undefined;
  const batch = guided ? 2 * images : images;

  // Rows as diffusers concatenates them: the B unconditional ones, then the B conditional ones.
  const prompts = [...(guided ? Array<string>(images).fill(input.negativePrompt) : []), ...Array<string>(images).fill(input.prompt)];
  const text = await timed(timing, false, () => model.encodeText(model.tokenize(prompts)));
  signal.throwIfAborted();
  const timestepCond = condDim === undefined ? undefined : { data: guidanceScaleEmbedding(input.guidance, condDim, batch), dims: [batch, condDim] };

  const scheduler = createScheduler(input.sampler, input.schedulerConfig, input.steps);
  const generator = images === 1 ? new TorchGenerator(input.seeds[0]!) : batchNoise(input.seeds.map((s) => new TorchGenerator(s)));
  let latent: Float32Array;
  let start = 0;
  if (input.init) {
    // diffusers' img2img order: the VAE's sample noise first, then the start noise, from each image's generator.
    const encNoise = generator.randn(numel);
    const { image } = input.init;
    const initBatch = images === 1 ? image : { data: repeat(image.data, images), dims: [images, ...image.dims.slice(1)] };
    const encoded = await timed(timing, false, () => model.encode(initBatch, encNoise));
    const clean = scaleAfterEncode(encoded.data, model.scalingFactor);
    const startIndex = img2imgStartIndex(input.steps, input.init.strength);
    if (startIndex === null) return { latent: clean, dims, guided };
    start = startIndex;
    latent = scheduler.addNoise(clean, generator.randn(numel), start);
  } else {
    const sigma = scheduler.initNoiseSigma;
    latent = generator.randn(numel).map((v) => v * sigma);
  }

  const total = input.steps - start;
  for (let i = start; i < input.steps; i++) {
    signal.throwIfAborted();
    let t0 = performance.now();
    const scaled = scheduler.scaleModelInput(latent, i);
    const sample = { data: guided ? duplicateForGuidance(scaled) : scaled, dims: [batch, 4, dims[2], dims[3]] };
    if (timing) timing.schedulerMs += performance.now() - t0;
    const out = await timed(timing, true, () => model.unet(sample, scheduler.timesteps[i]!, text.hidden, timestepCond));
    t0 = performance.now();
    const eps = guided ? combineGuidance(out.data, images, input.guidance) : out.data;
    const next = scheduler.step(eps, i, latent, generator);
    latent = next.prevSample;
    if (timing) timing.schedulerMs += performance.now() - t0;
    await input.onStep?.(i - start + 1, total, next.denoised);
  }
  signal.throwIfAborted();
  return { latent, dims, guided };
}

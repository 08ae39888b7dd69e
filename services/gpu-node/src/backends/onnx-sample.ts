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
 * Every draw is one latent and their number is known up front, so with
 * `noise` (NoiseWorkers) they are drawn in a worker thread ahead of use: the
 * initial noise while the text encoder runs, step i+1's while UNet step i
 * runs (session.run blocks this thread), the same values bit for bit.
 */
import {
  combineGuidance,
  createScheduler,
  duplicateForGuidance,
  guidanceScaleEmbedding,
  img2imgStartIndex,
  localNoiseStream,
  scaleAfterEncode,
  usesGuidance,
  type NoiseWorkers,
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
  /** Draws the noise in worker threads, overlapping the model calls; without it, on this thread between them. */
  noise?: NoiseWorkers;
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
  const scheduler = createScheduler(input.sampler, input.schedulerConfig, input.steps);
  // The draws, in diffusers' order: img2img's VAE sample noise then its start noise (none when strength
  // leaves no step to run), else the initial noise; then one per step for samplers that inject noise.
  const startIndex = input.init ? img2imgStartIndex(input.steps, input.init.strength) : 0;
  const steps = startIndex === null ? 0 : input.steps - startIndex;
  const draws = (input.init ? (startIndex === null ? 1 : 2) : 1) + (scheduler.stepNoise ? steps : 0);
  const plan = { seeds: input.seeds, per: numel / images, draws };
  // Started before the text encoder, so the first draw is ready when it is done.
  const noise = input.noise ? input.noise.stream(plan) : localNoiseStream(plan);
  try {
    const prompts = [...(guided ? Array<string>(images).fill(input.negativePrompt) : []), ...Array<string>(images).fill(input.prompt)];
    const text = await timed(timing, false, () => model.encodeText(model.tokenize(prompts)));
    signal.throwIfAborted();
    const timestepCond = condDim === undefined ? undefined : { data: guidanceScaleEmbedding(input.guidance, condDim, batch), dims: [batch, condDim] };

    let latent: Float32Array;
    if (input.init) {
      await noise.ready();
      const encNoise = noise.randn(numel);
      const { image } = input.init;
      const initBatch = images === 1 ? image : { data: repeat(image.data, images), dims: [images, ...image.dims.slice(1)] };
      const encoded = await timed(timing, false, () => model.encode(initBatch, encNoise));
      const clean = scaleAfterEncode(encoded.data, model.scalingFactor);
      if (startIndex === null) return { latent: clean, dims, guided };
      await noise.ready();
      latent = scheduler.addNoise(clean, noise.randn(numel), startIndex);
    } else {
      const sigma = scheduler.initNoiseSigma;
      await noise.ready();
      latent = noise.randn(numel).map((v) => v * sigma);
    }

    const start = startIndex ?? input.steps;
    for (let i = start; i < input.steps; i++) {
      signal.throwIfAborted();
      let t0 = performance.now();
      const scaled = scheduler.scaleModelInput(latent, i);
      const sample = { data: guided ? duplicateForGuidance(scaled) : scaled, dims: [batch, 4, dims[2], dims[3]] };
      if (timing) timing.schedulerMs += performance.now() - t0;
      const out = await timed(timing, true, () => model.unet(sample, scheduler.timesteps[i]!, text.hidden, timestepCond));
      t0 = performance.now();
      const eps = guided ? combineGuidance(out.data, images, input.guidance) : out.data;
      // Drawn during the UNet call: here it is normally waiting already (a wait is counted as sampler time).
      if (scheduler.stepNoise) await noise.ready();
      const next = scheduler.step(eps, i, latent, noise);
      latent = next.prevSample;
      if (timing) timing.schedulerMs += performance.now() - t0;
      await input.onStep?.(i - start + 1, steps, next.denoised);
    }
    signal.throwIfAborted();
    return { latent, dims, guided };
  } finally {
    noise.close();
  }
}

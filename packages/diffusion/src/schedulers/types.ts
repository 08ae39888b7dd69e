// What a sampler looks like to the denoising loop (diffusers' scheduler
// protocol, indexed by step rather than looked up by timestep):
//   x = initNoise · initNoiseSigma
//   for i in 0 … N−1: ε = unet(scaleModelInput(x, i), timesteps[i]); x = step(ε, i, x, noise).prevSample
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SamplerName } from '../samplers.js';

export interface StepOutput {
  /** The latent for the next step (the final latent after the last step). */
  prevSample: Float32Array;
  /** The model's current estimate of the clean latent (x̂₀), what previews show. */
  denoised: Float32Array;
}

/** One scheduler object serves one run: multistep samplers keep the previous step's estimate. */
export interface Scheduler {
  readonly sampler: SamplerName;
  /**
   * The UNet's timestep input per step: fractional for Euler's linspace and Karras schedules (an int64 UNet
   * input takes it truncated, as diffusers' ONNX pipeline casts it).
   */
  readonly timesteps: readonly number[];
  /** σ per step plus a final 0, for the σ-parameterised samplers; undefined for DDIM and LCM. */
  readonly sigmas: readonly number[] | undefined;
  /**
   * Whether step() draws fresh latent-sized noise (Euler a on every step, LCM on all but the last, DDIM with
   * eta > 0), so that a caller can draw it ahead (NoiseWorkers) instead of on the step's critical path.
   */
  readonly stepNoise: boolean;
  /** The standard deviation to scale the initial unit noise by. */
  readonly initNoiseSigma: number;
  /** The UNet input for step i (Euler's samplers divide by √(σ²+1); others return the sample). */
  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array;
  /**
   * One denoising step. `noise` is asked for fresh unit noise (latent-sized) only by the samplers that
   * inject it (Euler a on every step, LCM on all but the last, DDIM with eta > 0). Multistep samplers
   * (DPM++ 2M) must be stepped in order.
   */
  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, noise: NoiseSource): StepOutput;
  /** img2img: the clean latent noised to the level of step `stepIndex` (diffusers add_noise). */
  addNoise(original: Float32Array, noise: Float32Array, stepIndex: number): Float32Array;
}

export function assertSameLength(a: Float32Array, b: Float32Array, what: string): void {
  if (a.length !== b.length) throw new RangeError(`${what}: ${a.length} values against ${b.length}`);
}

export function assertStepIndex(stepIndex: number, steps: number): void {
  if (!Number.isInteger(stepIndex) || stepIndex < 0 || stepIndex >= steps) throw new RangeError(`step index ${stepIndex} is outside 0…${steps - 1}`);
}

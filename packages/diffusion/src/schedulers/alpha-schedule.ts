// What DDIM and LCM share around their step: discrete timesteps over the
// training ᾱ (diffusers' alphas_cumprod), ᾱ after the last step (1 with
// set_alpha_to_one, else ᾱ_0), an unscaled UNet input, clip_sample on x̂₀, and
// img2img's DDPM forward noising.
import { f32 } from '../rng/float32.js';
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SamplerName } from '../samplers.js';
import type { SchedulerConfig } from './config.js';
import { alphasCumprod } from './noise-schedule.js';
import { assertSameLength, assertStepIndex, type Scheduler, type StepOutput } from './types.js';
import { mapF32 } from '../map-f32.js';

export abstract class AlphaScheduler implements Scheduler {
  abstract readonly sampler: SamplerName;
  abstract readonly stepNoise: boolean;
  readonly sigmas = undefined;
  readonly initNoiseSigma = 1;
  protected readonly alphas: Float64Array;
  /** ᾱ of the step after the last (t < 0). */
  protected readonly finalAlpha: number;

  constructor(
    protected readonly config: SchedulerConfig,
    protected readonly steps: number,
    readonly timesteps: readonly number[],
  ) {
    this.alphas = alphasCumprod(config);
    this.finalAlpha = (config.setAlphaToOne ?? true) ? 1 : this.alphas[0]!;
  }

  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    assertStepIndex(stepIndex, this.steps);
    return sample;
  }

  abstract step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, noise: NoiseSource): StepOutput;

  addNoise(original: Float32Array, noise: Float32Array, stepIndex: number): Float32Array {
    assertSameLength(original, noise, 'addNoise');
    assertStepIndex(stepIndex, this.steps);
    return addAlphaNoise(original, noise, this.alphas[this.timesteps[stepIndex]!]!);
  }

  /** x̂₀ clamped to ±clip_sample_range when clip_sample is on (its default differs per scheduler class). */
  protected clipped(x0: Float32Array, byDefault: boolean): Float32Array {
    if (!(this.config.clipSample ?? byDefault)) return x0;
    const r = f32(this.config.clipSampleRange);
    const out = new Float32Array(x0.length);
    for (let i = 0; i < x0.length; i++) out[i] = Math.min(r, Math.max(-r, x0[i]!));
    return out;
  }
}

/** DDPM forward noising: √ᾱ·x₀ + √(1−ᾱ)·n (diffusers DDIM/LCM add_noise). */
export function addAlphaNoise(original: Float32Array, noise: Float32Array, alphaProd: number): Float32Array {
  const sa = f32(Math.sqrt(alphaProd));
  const sb = f32(Math.sqrt(f32(1 - alphaProd)));
  return mapF32(original, (x, i) => f32(sa * x) + f32(sb * noise[i]!));
}

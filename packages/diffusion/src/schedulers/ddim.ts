// DDIM (Song et al. 2021, eq. 12), as diffusers' DDIMScheduler
// (scheduling_ddim.py):
//   t' = t − T//N;  ᾱ' = ᾱ_{t'}, or (t' < 0) 1 with set_alpha_to_one else ᾱ_0
//   x̂₀, ε̂ from the model output;  σ_η = η·√((1−ᾱ')/(1−ᾱ)·(1 − ᾱ/ᾱ'))
//   x ← √ᾱ'·x̂₀ + √(1 − ᾱ' − σ_η²)·ε̂  (+ σ_η·n when η > 0)
// Class defaults: leading spacing, set_alpha_to_one and clip_sample true.
import { f32 } from '../rng/float32.js';
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SchedulerConfig } from './config.js';
import { alphasCumprod } from './noise-schedule.js';
import { denoisedFromAlpha } from './predict.js';
import { assertSteps } from './sigma-schedule.js';
import { discreteTimesteps } from './spacing.js';
import { assertSameLength, assertStepIndex, type Scheduler, type StepOutput } from './types.js';

export interface DdimOptions {
  /** η: 0 is deterministic DDIM (the default), 1 is DDPM-like. */
  eta?: number;
}

export class DdimScheduler implements Scheduler {
  readonly sampler = 'ddim';
  readonly timesteps: readonly number[];
  readonly sigmas = undefined;
  readonly initNoiseSigma = 1;
  private readonly alphas: Float64Array;
  private readonly finalAlpha: number;
  private readonly eta: number;

  constructor(
    private readonly config: SchedulerConfig,
    private readonly steps: number,
    options: DdimOptions = {},
  ) {
    assertSteps(steps);
    this.eta = options.eta ?? 0;
    this.alphas = alphasCumprod(config);
    this.finalAlpha = (config.setAlphaToOne ?? true) ? 1 : this.alphas[0]!;
    this.timesteps = discreteTimesteps(config.timestepSpacing ?? 'leading', config.numTrainTimesteps, steps, config.stepsOffset);
  }

  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    assertStepIndex(stepIndex, this.steps);
    return sample;
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, noise: NoiseSource): StepOutput {
    assertStepIndex(stepIndex, this.steps);
    const t = this.timesteps[stepIndex]!;
    const prevT = t - Math.floor(this.config.numTrainTimesteps / this.steps);
    const a = this.alphas[t]!;
    const aPrev = prevT >= 0 ? this.alphas[prevT]! : this.finalAlpha;
    const pred = denoisedFromAlpha(this.config.predictionType, modelOutput, sample, a);
    let x0 = pred.x0;
    if (this.config.clipSample ?? true) {
      const r = f32(this.config.clipSampleRange);
      x0 = x0.map((v) => Math.min(r, Math.max(-r, v)));
    }
    const variance = f32(f32(f32(1 - aPrev) / f32(1 - a)) * f32(1 - f32(a / aPrev)));
    const std = f32(f32(this.eta) * f32(Math.sqrt(variance)));
    const dirCoef = f32(Math.sqrt(f32(f32(1 - aPrev) - f32(std * std))));
    const sqrtPrev = f32(Math.sqrt(aPrev));
    const eps = pred.eps;
    let prevSample = x0.map((v, i) => f32(sqrtPrev * v) + f32(dirCoef * eps[i]!));
    if (this.eta > 0) {
      const n = noise.randn(sample.length);
      prevSample = prevSample.map((v, i) => v + f32(std * n[i]!));
    }
    return { prevSample, denoised: x0 };
  }

  addNoise(original: Float32Array, noise: Float32Array, stepIndex: number): Float32Array {
    assertSameLength(original, noise, 'addNoise');
    assertStepIndex(stepIndex, this.steps);
    return addAlphaNoise(original, noise, this.alphas[this.timesteps[stepIndex]!]!);
  }
}

/** DDPM forward noising: √ᾱ·x₀ + √(1−ᾱ)·n (diffusers DDIM/LCM add_noise). */
export function addAlphaNoise(original: Float32Array, noise: Float32Array, alphaProd: number): Float32Array {
  const sa = f32(Math.sqrt(alphaProd));
  const sb = f32(Math.sqrt(f32(1 - alphaProd)));
  return original.map((x, i) => f32(sa * x) + f32(sb * noise[i]!));
}

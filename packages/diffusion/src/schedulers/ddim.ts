// DDIM (Song et al. 2021, eq. 12), as diffusers' DDIMScheduler
// (scheduling_ddim.py):
//   t' = t − T//N;  ᾱ' = ᾱ_{t'}, or (t' < 0) 1 with set_alpha_to_one else ᾱ_0
//   x̂₀, ε̂ from the model output;  σ_η = η·√((1−ᾱ')/(1−ᾱ)·(1 − ᾱ/ᾱ'))
//   x ← √ᾱ'·x̂₀ + √(1 − ᾱ' − σ_η²)·ε̂  (+ σ_η·n when η > 0)
// Class defaults: leading spacing, set_alpha_to_one and clip_sample true.
import { f32 } from '../rng/float32.js';
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SchedulerConfig } from './config.js';
import { AlphaScheduler } from './alpha-schedule.js';
import { denoisedFromAlpha } from './predict.js';
import { assertSteps } from './sigma-schedule.js';
import { discreteTimesteps } from './spacing.js';
import { assertStepIndex, type StepOutput } from './types.js';

export interface DdimOptions {
  /** η: 0 is deterministic DDIM (the default), 1 is DDPM-like. */
  eta?: number;
}

export class DdimScheduler extends AlphaScheduler {
  readonly sampler = 'ddim';
  private readonly eta: number;
  readonly stepNoise: boolean;

  constructor(config: SchedulerConfig, steps: number, options: DdimOptions = {}) {
    assertSteps(steps);
    super(config, steps, discreteTimesteps(config.timestepSpacing ?? 'leading', config.numTrainTimesteps, steps, config.stepsOffset));
    this.eta = options.eta ?? 0;
    this.stepNoise = this.eta > 0;
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, noise: NoiseSource): StepOutput {
    assertStepIndex(stepIndex, this.steps);
    const t = this.timesteps[stepIndex]!;
    const prevT = t - Math.floor(this.config.numTrainTimesteps / this.steps);
    const a = this.alphas[t]!;
    const aPrev = prevT >= 0 ? this.alphas[prevT]! : this.finalAlpha;
    const pred = denoisedFromAlpha(this.config.predictionType, modelOutput, sample, a);
    const x0 = this.clipped(pred.x0, true);
    const variance = f32(f32(f32(1 - aPrev) / f32(1 - a)) * f32(1 - f32(a / aPrev)));
    const std = f32(f32(this.eta) * f32(Math.sqrt(variance)));
    const dirCoef = f32(Math.sqrt(f32(f32(1 - aPrev) - f32(std * std))));
    const sqrtPrev = f32(Math.sqrt(aPrev));
    const eps = pred.eps;
    const prevSample = new Float32Array(x0.length);
    for (let i = 0; i < x0.length; i++) prevSample[i] = f32(sqrtPrev * x0[i]!) + f32(dirCoef * eps[i]!);
    if (this.eta > 0) {
      const n = noise.randn(sample.length);
      for (let i = 0; i < prevSample.length; i++) prevSample[i] = prevSample[i]! + f32(std * n[i]!);
    }
    return { prevSample, denoised: x0 };
  }
}

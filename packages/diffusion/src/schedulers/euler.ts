// Euler (Karras et al. 2022, algorithm 2 without churn), as diffusers'
// EulerDiscreteScheduler (scheduling_euler_discrete.py) with s_churn = 0:
//   x̂₀ = denoised(ε, x, σ_i);  d = (x − x̂₀)/σ_i;  x ← x + d·(σ_{i+1} − σ_i)
// No noise is drawn. use_karras_sigmas from the config is honoured.
import { f32 } from '../rng/float32.js';
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SchedulerConfig } from './config.js';
import { denoisedFromSigma } from './predict.js';
import { addSigmaNoise, eulerSigmaSchedule, scaleBySigma } from './sigma-schedule.js';
import { assertStepIndex, type Scheduler, type StepOutput } from './types.js';

export class EulerScheduler implements Scheduler {
  readonly sampler = 'euler';
  readonly timesteps: readonly number[];
  readonly sigmas: readonly number[];
  readonly initNoiseSigma: number;

  constructor(
    private readonly config: SchedulerConfig,
    steps: number,
  ) {
    const s = eulerSigmaSchedule(config, steps, config.useKarrasSigmas);
    this.timesteps = s.timesteps;
    this.sigmas = s.sigmas;
    this.initNoiseSigma = s.initNoiseSigma;
  }

  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    assertStepIndex(stepIndex, this.timesteps.length);
    return scaleBySigma(sample, this.sigmas[stepIndex]!);
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, _noise: NoiseSource): StepOutput {
    assertStepIndex(stepIndex, this.timesteps.length);
    const sigma = this.sigmas[stepIndex]!;
    const dt = f32(this.sigmas[stepIndex + 1]! - sigma);
    const denoised = denoisedFromSigma(this.config.predictionType, modelOutput, sample, sigma);
    const prevSample = sample.map((x, i) => x + f32(f32(f32(x - denoised[i]!) / sigma) * dt));
    return { prevSample, denoised };
  }

  addNoise(original: Float32Array, noise: Float32Array, stepIndex: number): Float32Array {
    return addSigmaNoise(original, noise, this.sigmas, stepIndex);
  }
}

// Euler (Karras et al. 2022, algorithm 2 without churn), as diffusers'
// EulerDiscreteScheduler (scheduling_euler_discrete.py) with s_churn = 0:
//   x̂₀ = denoised(ε, x, σ_i);  d = (x − x̂₀)/σ_i;  x ← x + d·(σ_{i+1} − σ_i)
// No noise is drawn. use_karras_sigmas from the config is honoured.
import { f32 } from '../rng/float32.js';
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SchedulerConfig } from './config.js';
import { denoisedFromSigma } from './predict.js';
import { SigmaScheduler } from './sigma-schedule.js';
import { assertStepIndex, type StepOutput } from './types.js';

export class EulerScheduler extends SigmaScheduler {
  readonly sampler = 'euler';
  readonly stepNoise = false;

  constructor(config: SchedulerConfig, steps: number) {
    super(config, steps, config.useKarrasSigmas);
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, _noise: NoiseSource): StepOutput {
    assertStepIndex(stepIndex, this.timesteps.length);
    const sigma = this.sigmas[stepIndex]!;
    const dt = f32(this.sigmas[stepIndex + 1]! - sigma);
    const denoised = denoisedFromSigma(this.config.predictionType, modelOutput, sample, sigma);
    const prevSample = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const x = sample[i]!;
      prevSample[i] = x + f32(f32(f32(x - denoised[i]!) / sigma) * dt);
    }
    return { prevSample, denoised };
  }
}

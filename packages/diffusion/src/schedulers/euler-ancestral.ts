// Euler ancestral (k-diffusion sample_euler_ancestral, eta 1), as diffusers'
// EulerAncestralDiscreteScheduler (scheduling_euler_ancestral_discrete.py):
//   σ_up = √(σ_{i+1}²·(σ_i² − σ_{i+1}²)/σ_i²),  σ_down = √(σ_{i+1}² − σ_up²)
//   x ← x + (x − x̂₀)/σ_i·(σ_down − σ_i) + σ_up·n
// n is one fresh torch.randn of the latent's size per step, the last step
// included (σ_up = 0 there), drawn from the same generator as the initial
// noise: diffusers pipelines pass their generator to step().
import { f32 } from '../rng/float32.js';
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SchedulerConfig } from './config.js';
import { denoisedFromSigma } from './predict.js';
import { SigmaScheduler } from './sigma-schedule.js';
import { assertStepIndex, type StepOutput } from './types.js';

export class EulerAncestralScheduler extends SigmaScheduler {
  readonly sampler = 'euler_a';
  readonly stepNoise = true;

  constructor(config: SchedulerConfig, steps: number) {
    // diffusers' EulerAncestralDiscreteScheduler has no Karras option.
    super(config, steps, false);
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, noise: NoiseSource): StepOutput {
    assertStepIndex(stepIndex, this.timesteps.length);
    const from = this.sigmas[stepIndex]!;
    const to = this.sigmas[stepIndex + 1]!;
    const to2 = f32(to * to);
    const from2 = f32(from * from);
    const up = f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2)));
    const down = f32(Math.sqrt(f32(to2 - f32(up * up))));
    const dt = f32(down - from);
    const denoised = denoisedFromSigma(this.config.predictionType, modelOutput, sample, from);
    const n = noise.randn(sample.length);
    const prevSample = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const x = sample[i]!;
      const moved = f32(x + f32(f32(f32(x - denoised[i]!) / from) * dt));
      prevSample[i] = moved + f32(n[i]! * up);
    }
    return { prevSample, denoised };
  }
}

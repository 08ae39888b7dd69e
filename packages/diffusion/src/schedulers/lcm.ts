// Latent Consistency Models (Luo et al. 2023), multi-step sampling as
// diffusers' LCMScheduler (scheduling_lcm.py). Timesteps: k = T // original
// steps (50), base = [1 … 50]·k − 1 reversed, visit base[floor(linspace(0, 50,
// N, endpoint=False))]; N = 1 is the single-step (Turbo-style) case.
// Step: u = t·timestep_scaling; c_skip = 0.25/(u² + 0.25); c_out = u/√(u² + 0.25);
//   d = c_out·x̂₀ + c_skip·x;  x ← √ᾱ_next·d + √(1−ᾱ_next)·n on all but the last
//   step (n fresh unit noise from the generator), x = d on the last.
// Class defaults: set_alpha_to_one true, clip_sample false.
import { f32 } from '../rng/float32.js';
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SchedulerConfig } from './config.js';
import { addAlphaNoise, AlphaScheduler } from './alpha-schedule.js';
import { denoisedFromAlpha } from './predict.js';
import { assertSteps } from './sigma-schedule.js';
import { assertStepIndex, type StepOutput } from './types.js';

export class LcmScheduler extends AlphaScheduler {
  readonly sampler = 'lcm';
  readonly stepNoise = true;

  constructor(config: SchedulerConfig, steps: number) {
    super(config, steps, lcmTimesteps(config, steps));
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, noise: NoiseSource): StepOutput {
    assertStepIndex(stepIndex, this.steps);
    const t = this.timesteps[stepIndex]!;
    const last = stepIndex === this.steps - 1;
    const prevT = last ? t : this.timesteps[stepIndex + 1]!;
    const a = this.alphas[t]!;
    const aPrev = prevT >= 0 ? this.alphas[prevT]! : this.finalAlpha;
    const u = f32(t * f32(this.config.timestepScaling));
    const u2p = f32(f32(u * u) + 0.25);
    const cSkip = f32(0.25 / u2p);
    const cOut = f32(u / f32(Math.sqrt(u2p)));
    const x0 = this.clipped(denoisedFromAlpha(this.config.predictionType, modelOutput, sample, a).x0, false);
    const denoised = new Float32Array(x0.length);
    for (let i = 0; i < x0.length; i++) denoised[i] = f32(cOut * x0[i]!) + f32(cSkip * sample[i]!);
    if (last) return { prevSample: denoised, denoised };
    return { prevSample: addAlphaNoise(denoised, noise.randn(sample.length), aPrev), denoised };
  }
}

/** The timesteps the header describes; more steps than the model was distilled for are refused. */
function lcmTimesteps(config: SchedulerConfig, steps: number): number[] {
  assertSteps(steps);
  const original = config.originalInferenceSteps;
  if (original > config.numTrainTimesteps) throw new RangeError(`original_inference_steps ${original} exceeds num_train_timesteps ${config.numTrainTimesteps}`);
  if (steps > original) throw new RangeError(`LCM runs at most original_inference_steps = ${original} steps, got ${steps}`);
  const k = Math.floor(config.numTrainTimesteps / original);
  const base = Array.from({ length: original }, (_, i) => (original - i) * k - 1);
  const stride = original / steps; // numpy.linspace(0, original, steps, endpoint=False), floored
  return Array.from({ length: steps }, (_, i) => base[Math.floor(i * stride)]!);
}

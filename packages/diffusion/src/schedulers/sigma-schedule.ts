// The σ schedule and scheduler base shared by Euler and Euler ancestral (diffusers
// scheduling_euler_discrete.py / scheduling_euler_ancestral_discrete.py,
// set_timesteps): float timesteps by the spacing, σ by numpy.interp over the
// training σ at those (fractional) timesteps, optionally Karras sigmas (Euler
// only) with t from log-σ interpolation, then a final σ = 0; all σ float32.
// init_noise_sigma is σ_max for linspace/trailing, √(σ_max² + 1) for leading.
import { f32 } from '../rng/float32.js';
import type { SchedulerConfig, TimestepSpacing } from './config.js';
import { alphasCumprod, interpAtTimestep, karrasSigmas, logSigmasOf, sigmaToTimestep, trainingSigmas } from './noise-schedule.js';
import { leadingTimesteps, linspaceDescending, trailingTimesteps } from './spacing.js';
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SamplerName } from '../samplers.js';
import { assertSameLength, assertStepIndex, type Scheduler, type StepOutput } from './types.js';
import { mapF32 } from '../map-f32.js';

export interface SigmaSchedule {
  timesteps: number[];
  sigmas: number[];
  initNoiseSigma: number;
}

export function eulerSigmaSchedule(cfg: SchedulerConfig, steps: number, karras: boolean): SigmaSchedule {
  assertSteps(steps);
  const T = cfg.numTrainTimesteps;
  const spacing: TimestepSpacing = cfg.timestepSpacing ?? 'linspace';
  let timesteps: number[];
  if (spacing === 'linspace') timesteps = linspaceDescending(T - 1, steps).map(f32);
  else if (spacing === 'leading') timesteps = leadingTimesteps(Math.floor(T / steps), steps, cfg.stepsOffset);
  else timesteps = trailingTimesteps(T, steps);
  const train = trainingSigmas(alphasCumprod(cfg));
  let sigmas = timesteps.map((t) => interpAtTimestep(t, train));
  if (karras) {
    sigmas = karrasSigmas(sigmas[sigmas.length - 1]!, sigmas[0]!, steps);
    const logSigmas = logSigmasOf(train);
    timesteps = sigmas.map((s) => f32(sigmaToTimestep(s, logSigmas)));
  }
  const withZero = [...sigmas.map(f32), 0];
  const max = Math.max(...withZero);
  return {
    timesteps,
    sigmas: withZero,
    initNoiseSigma: spacing === 'leading' ? f32(Math.sqrt(f32(f32(max * max) + 1))) : max,
  };
}

/** x / √(σ² + 1), float32 as torch computes it. */
export function scaleBySigma(sample: Float32Array, sigma: number): Float32Array {
  const d = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
  const out = new Float32Array(sample.length);
  for (let i = 0; i < sample.length; i++) out[i] = sample[i]! / d; // the store rounds each quotient to float32
  return out;
}

/** add_noise for σ samplers: x₀ + σ·n. */
export function addSigmaNoise(original: Float32Array, noise: Float32Array, sigmas: readonly number[], stepIndex: number): Float32Array {
  assertSameLength(original, noise, 'addNoise');
  assertStepIndex(stepIndex, sigmas.length - 1);
  const sigma = sigmas[stepIndex]!;
  return mapF32(original, (x, i) => x + f32(noise[i]! * sigma));
}

export function assertSteps(steps: number): void {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`);
}

/**
 * What Euler and Euler ancestral share around their step: the σ schedule,
 * the input scaling by √(σ² + 1) and img2img's x₀ + σ·n. Each subclass is
 * its step alone.
 */
export abstract class SigmaScheduler implements Scheduler {
  abstract readonly sampler: SamplerName;
  abstract readonly stepNoise: boolean;
  readonly timesteps: readonly number[];
  readonly sigmas: readonly number[];
  readonly initNoiseSigma: number;

  constructor(
    protected readonly config: SchedulerConfig,
    steps: number,
    karras: boolean,
  ) {
    const s = eulerSigmaSchedule(config, steps, karras);
    this.timesteps = s.timesteps;
    this.sigmas = s.sigmas;
    this.initNoiseSigma = s.initNoiseSigma;
  }

  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    assertStepIndex(stepIndex, this.timesteps.length);
    return scaleBySigma(sample, this.sigmas[stepIndex]!);
  }

  abstract step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, noise: NoiseSource): StepOutput;

  addNoise(original: Float32Array, noise: Float32Array, stepIndex: number): Float32Array {
    return addSigmaNoise(original, noise, this.sigmas, stepIndex);
  }
}

// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", algorithm 2), as
// diffusers' DPMSolverMultistepScheduler (scheduling_dpmsolver_multistep.py)
// with its defaults: solver_order 2, algorithm_type dpmsolver++, solver_type
// midpoint, lower_order_final, final_sigmas_type "zero". With α_σ = 1/√(σ²+1),
// s_σ = σ·α_σ, λ = ln α − ln s, h = λ_{i+1} − λ_i:
//   first order:  x ← (s_{i+1}/s_i)·x − α_{i+1}(e^{−h} − 1)·m₀
//   second order: r = (λ_i − λ_{i−1})/h, D₁ = (m₀ − m₁)/r,
//                 x ← (s_{i+1}/s_i)·x − α_{i+1}(e^{−h} − 1)·(m₀ + ½D₁)
// m₀ is this step's x̂₀, m₁ the previous one. The first step taken and the
// last (σ = 0, where the update is exactly m₀) are first order. Timesteps use
// N+1 points with the last dropped; Karras sigmas map back to rounded t.
import { f32 } from '../rng/float32.js';
import type { NoiseSource } from '../rng/torch-generator.js';
import type { SchedulerConfig } from './config.js';
import { alphasCumprod, interpAtTimestep, karrasSigmas, logSigmasOf, sigmaToTimestep, trainingSigmas } from './noise-schedule.js';
import { assertSteps } from './sigma-schedule.js';
import { leadingTimesteps, linspaceDescending, roundHalfEven, trailingTimesteps } from './spacing.js';
import { assertSameLength, assertStepIndex, type Scheduler, type StepOutput } from './types.js';
import { mapF32 } from '../map-f32.js';

interface AlphaSigma {
  alpha: number;
  sigma: number;
  lambda: number;
}

function alphaSigma(sigma: number): AlphaSigma {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  const s = f32(sigma * alpha);
  return { alpha, sigma: s, lambda: f32(f32(Math.log(alpha)) - f32(Math.log(s))) };
}

export class DpmPp2mScheduler implements Scheduler {
  readonly sampler: 'dpmpp_2m' | 'dpmpp_2m_karras';
  readonly timesteps: readonly number[];
  readonly sigmas: readonly number[];
  readonly initNoiseSigma = 1;
  readonly stepNoise = false;
  private previous: { stepIndex: number; denoised: Float32Array } | undefined;

  constructor(
    private readonly config: SchedulerConfig,
    steps: number,
    karras: boolean,
  ) {
    assertSteps(steps);
    this.sampler = karras ? 'dpmpp_2m_karras' : 'dpmpp_2m';
    const T = config.numTrainTimesteps;
    const spacing = config.timestepSpacing ?? 'linspace';
    let timesteps: number[];
    if (spacing === 'linspace') timesteps = linspaceDescending(T - 1, steps + 1).slice(0, steps).map(roundHalfEven);
    else if (spacing === 'leading') timesteps = leadingTimesteps(Math.floor(T / (steps + 1)), steps + 1, config.stepsOffset).slice(0, steps);
    else timesteps = trailingTimesteps(T, steps);
    const train = trainingSigmas(alphasCumprod(config));
    let sigmas: number[];
    if (karras) {
      sigmas = karrasSigmas(train[0]!, train[T - 1]!, steps);
      const logSigmas = logSigmasOf(train);
      timesteps = sigmas.map((s) => roundHalfEven(sigmaToTimestep(s, logSigmas)));
    } else {
      sigmas = timesteps.map((t) => interpAtTimestep(t, train));
    }
    this.timesteps = timesteps;
    this.sigmas = [...sigmas.map(f32), 0];
  }

  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    assertStepIndex(stepIndex, this.timesteps.length);
    return sample;
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, _noise: NoiseSource): StepOutput {
    assertStepIndex(stepIndex, this.timesteps.length);
    if (this.previous && this.previous.stepIndex !== stepIndex - 1) {
      throw new RangeError(`DPM++ 2M is multistep: step ${stepIndex} after step ${this.previous.stepIndex}`);
    }
    const now = alphaSigma(this.sigmas[stepIndex]!);
    const denoised = new Float32Array(sample.length);
    const { alpha, sigma } = now;
    if (this.config.predictionType === 'epsilon') for (let i = 0; i < sample.length; i++) denoised[i] = f32(sample[i]! - f32(sigma * modelOutput[i]!)) / alpha;
    else for (let i = 0; i < sample.length; i++) denoised[i] = f32(alpha * sample[i]!) - f32(sigma * modelOutput[i]!);
    const previous = this.previous;
    this.previous = { stepIndex, denoised };
    const sigmaNext = this.sigmas[stepIndex + 1]!;
    // σ = 0: α = 1, s = 0, λ = ∞, e^{−h} = 0, and the update is x̂₀ itself.
    if (sigmaNext === 0) return { prevSample: denoised.slice(), denoised };
    const next = alphaSigma(sigmaNext);
    const h = f32(next.lambda - now.lambda);
    const coefX = f32(next.sigma / now.sigma);
    const coefD = f32(next.alpha * f32(f32(Math.exp(-h)) - 1));
    const last = stepIndex === this.timesteps.length - 1;
    const prevSample = new Float32Array(sample.length);
    if (!previous || last) {
      for (let i = 0; i < sample.length; i++) prevSample[i] = f32(coefX * sample[i]!) - f32(coefD * denoised[i]!);
      return { prevSample, denoised };
    }
    const before = alphaSigma(this.sigmas[stepIndex - 1]!);
    const r = f32(f32(now.lambda - before.lambda) / h);
    const invR = f32(1 / r);
    const half = f32(0.5 * coefD);
    const m1 = previous.denoised;
    for (let i = 0; i < sample.length; i++) {
      const d1 = f32(invR * f32(denoised[i]! - m1[i]!));
      prevSample[i] = f32(f32(coefX * sample[i]!) - f32(coefD * denoised[i]!)) - f32(half * d1);
    }
    return { prevSample, denoised };
  }

  addNoise(original: Float32Array, noise: Float32Array, stepIndex: number): Float32Array {
    assertSameLength(original, noise, 'addNoise');
    assertStepIndex(stepIndex, this.timesteps.length);
    const { alpha, sigma } = alphaSigma(this.sigmas[stepIndex]!);
    return mapF32(original, (x, i) => f32(alpha * x) + f32(sigma * noise[i]!));
  }
}

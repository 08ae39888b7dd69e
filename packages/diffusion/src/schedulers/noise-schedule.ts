// The training noise schedule every sampler starts from, computed in float32
// the way diffusers computes it with torch on the CPU:
// - betas: torch.linspace(start, end, T, float32) ("linear"), or
//   torch.linspace(√start, √end, T)² ("scaled_linear"); torch's CPU linspace
//   (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp) steps from the start
//   for the first half and back from the end for the second. That is the
//   serial kernel of current torch; torch 1.13's vectorised one (the Debian
//   build the fixtures come from) rounds about a quarter of the betas the
//   other way by one ulp, moving σ by under 2e-7 relative.
// - ᾱ = cumprod(1 − β), accumulated in double and stored as float32 (CPU cumprod).
// - σ_t = √((1 − ᾱ_t)/ᾱ_t) in float32.
// Karras sigmas and σ→t are k-diffusion's (Karras et al. 2022, eq. 5), as
// diffusers' _convert_to_karras and _sigma_to_t compute them in float64.
import { f32 } from '../rng/float32.js';
import type { SchedulerConfig } from './config.js';

/** float32 torch.linspace(start, end, n) on the CPU. */
export function linspaceF32(start: number, end: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const s = f32(start);
  const e = f32(end);
  if (n === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (n - 1));
  const halfway = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < halfway ? f32(s + f32(step * i)) : f32(e - f32(step * (n - 1 - i)));
  return out;
}

/** ᾱ_t for t = 0 … T−1 (float32 values). */
export function alphasCumprod(cfg: SchedulerConfig): Float64Array {
  const T = cfg.numTrainTimesteps;
  const betas =
    cfg.betaSchedule === 'linear'
      ? linspaceF32(cfg.betaStart, cfg.betaEnd, T)
      : linspaceF32(Math.sqrt(cfg.betaStart), Math.sqrt(cfg.betaEnd), T).map((b) => f32(b * b));
  const out = new Float64Array(T);
  let acc = 1;
  for (let t = 0; t < T; t++) {
    acc *= f32(1 - betas[t]!);
    out[t] = f32(acc);
  }
  return out;
}

/** σ_t = √((1 − ᾱ_t)/ᾱ_t), float32, for every training timestep. */
export function trainingSigmas(alphasCumprod: Float64Array): Float64Array {
  return alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

/** numpy.interp(x, [0, 1, …, n−1], fp) in float64. */
export function interpAtTimestep(x: number, fp: Float64Array): number {
  const last = fp.length - 1;
  if (x <= 0) return fp[0]!;
  if (x >= last) return fp[last]!;
  const j = Math.floor(x);
  const slope = fp[j + 1]! - fp[j]!;
  return slope * (x - j) + fp[j]!;
}

/** Karras et al. (2022) σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): number[] {
  const rho = 7;
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return Array.from({ length: n }, (_, i) => {
    const ramp = n === 1 ? 0 : i === n - 1 ? 1 : i * (1 / (n - 1)); // numpy.linspace(0, 1, n)
    return (maxInv + ramp * (minInv - maxInv)) ** rho;
  });
}

/** The (fractional) training timestep whose log σ matches, interpolating log σ linearly (diffusers _sigma_to_t). */
export function sigmaToTimestep(sigma: number, logSigmas: Float64Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  // low = the last index whose log σ ≤ log sigma (0 if none), kept below the end.
  let low = 0;
  for (let i = 0; i < logSigmas.length; i++) if (logSigma - logSigmas[i]! >= 0) low = i;
  low = Math.min(low, logSigmas.length - 2);
  const lo = logSigmas[low]!;
  const hi = logSigmas[low + 1]!;
  const w = Math.min(1, Math.max(0, (lo - logSigma) / (lo - hi)));
  return (1 - w) * low + w * (low + 1);
}

/** float32 natural logs of the training sigmas (numpy.log on a float32 array). */
export function logSigmasOf(sigmas: Float64Array): Float64Array {
  return sigmas.map((s) => f32(Math.log(s)));
}

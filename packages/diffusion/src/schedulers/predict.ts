// The clean-latent estimate x̂₀ from the model output, per parameterisation,
// in float32 operation by operation as diffusers' torch code runs it.
// σ form (k-diffusion; Euler samplers): ε: x − σ·ε;  v: v·(−σ/√(σ²+1)) + x/(σ²+1).
// ᾱ form (DDIM, LCM; Song et al. 2021 eq. 12, Salimans & Ho 2022 for v):
//   ε: (x − √(1−ᾱ)·ε)/√ᾱ;  v: √ᾱ·x − √(1−ᾱ)·v.
import { f32 } from '../rng/float32.js';
import type { PredictionType } from './config.js';
import { assertSameLength } from './types.js';
import { mapF32 } from '../map-f32.js';

export function denoisedFromSigma(prediction: PredictionType, modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
  assertSameLength(modelOutput, sample, 'model output vs sample');
  if (prediction === 'epsilon') return mapF32(sample, (x, i) => x - f32(sigma * modelOutput[i]!));
  const s2p1 = f32(f32(sigma * sigma) + 1);
  const cOut = f32(-sigma / f32(Math.sqrt(s2p1)));
  return mapF32(sample, (x, i) => f32(modelOutput[i]! * cOut) + f32(x / s2p1));
}

export interface AlphaPrediction {
  x0: Float32Array;
  /** The noise estimate (ε itself, or recovered from v). */
  eps: Float32Array;
}

export function denoisedFromAlpha(prediction: PredictionType, modelOutput: Float32Array, sample: Float32Array, alphaProd: number): AlphaPrediction {
  assertSameLength(modelOutput, sample, 'model output vs sample');
  const sqrtA = f32(Math.sqrt(alphaProd));
  const sqrtB = f32(Math.sqrt(f32(1 - alphaProd)));
  if (prediction === 'epsilon') {
    return { x0: mapF32(sample, (x, i) => f32(x - f32(sqrtB * modelOutput[i]!)) / sqrtA), eps: modelOutput };
  }
  return {
    x0: mapF32(sample, (x, i) => f32(sqrtA * x) - f32(sqrtB * modelOutput[i]!)),
    eps: mapF32(sample, (x, i) => f32(sqrtA * modelOutput[i]!) + f32(sqrtB * x)),
  };
}

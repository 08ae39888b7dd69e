// The clean-latent estimate x̂₀ from the model output, per parameterisation,
// in float32 operation by operation as diffusers' torch code runs it.
// Here and in the samplers' steps the per-value math is a plain loop, not
// mapF32 with a closure: called a few dozen times a render, a step never gets
// hot enough for V8 to inline the closure into mapF32's shared (megamorphic)
// loop, which then costs ~9 ns a value against ~1 (a 64×64 latent: 0.3 ms a step).
// σ form (k-diffusion; Euler samplers): ε: x − σ·ε;  v: v·(−σ/√(σ²+1)) + x/(σ²+1).
// ᾱ form (DDIM, LCM; Song et al. 2021 eq. 12, Salimans & Ho 2022 for v):
//   ε: (x − √(1−ᾱ)·ε)/√ᾱ;  v: √ᾱ·x − √(1−ᾱ)·v.
import { f32 } from '../rng/float32.js';
import type { PredictionType } from './config.js';
import { assertSameLength } from './types.js';

export function denoisedFromSigma(prediction: PredictionType, modelOutput: Float32Array, sample: Float32Array, sigma: number): Float32Array {
  assertSameLength(modelOutput, sample, 'model output vs sample');
  const out = new Float32Array(sample.length);
  if (prediction === 'epsilon') {
    for (let i = 0; i < out.length; i++) out[i] = sample[i]! - f32(sigma * modelOutput[i]!);
    return out;
  }
  const s2p1 = f32(f32(sigma * sigma) + 1);
  const cOut = f32(-sigma / f32(Math.sqrt(s2p1)));
  for (let i = 0; i < out.length; i++) out[i] = f32(modelOutput[i]! * cOut) + f32(sample[i]! / s2p1);
  return out;
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
  const x0 = new Float32Array(sample.length);
  if (prediction === 'epsilon') {
    for (let i = 0; i < x0.length; i++) x0[i] = f32(sample[i]! - f32(sqrtB * modelOutput[i]!)) / sqrtA;
    return { x0, eps: modelOutput };
  }
  const eps = new Float32Array(sample.length);
  for (let i = 0; i < x0.length; i++) {
    const x = sample[i]!;
    const v = modelOutput[i]!;
    x0[i] = f32(sqrtA * x) - f32(sqrtB * v);
    eps[i] = f32(sqrtA * v) + f32(sqrtB * x);
  }
  return { x0, eps };
}

// Classifier-free guidance (Ho & Salimans 2022): the UNet runs once on a
// batch of 2B — the B unconditional (negative-prompt) rows first, then the B
// conditional ones, as diffusers concatenates [negative, positive] — and the
// two halves combine as ε = ε_u + g·(ε_c − ε_u), computed in float32 as
// diffusers' `noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)`.
import { f32 } from './rng/float32.js';

/** Whether a guidance scale needs the unconditional pass at all (diffusers: g > 1). */
export function usesGuidance(scale: number): boolean {
  return scale > 1;
}

/** Combines a [2B, …] model output into [B, …]; `batch` is B. */
export function combineGuidance(output: Float32Array, batch: number, scale: number): Float32Array {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
  if (output.length % (2 * batch) !== 0) throw new RangeError(`a guided output of ${output.length} values does not split into 2×${batch} rows`);
  const half = output.length / 2;
  const g = f32(scale);
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const uncond = output[i]!;
    out[i] = uncond + f32(g * f32(output[half + i]! - uncond));
  }
  return out;
}

/** The UNet's batched input for guidance: the latent batch twice, [x; x]. */
export function duplicateForGuidance(latents: Float32Array): Float32Array {
  const out = new Float32Array(latents.length * 2);
  out.set(latents, 0);
  out.set(latents, latents.length);
  return out;
}

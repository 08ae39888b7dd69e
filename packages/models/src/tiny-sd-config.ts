/**
 * nightshift-tiny-sd's constants and build options (the shapes every part
 * agrees on), kept apart so each graph file depends on this alone.
 */
import { SD15_LATENT_RGB_FACTORS } from '@nightshift/diffusion';
import type { Precision } from './tiny-sd-graph.js';

export const TINY_SD_NAME = 'nightshift-tiny-sd';
/** Bump when any written byte changes. */
export const TINY_SD_VERSION = 1;
/** The weights' seed: the model is "random", and this makes it the same random everywhere. */
export const TINY_SD_SEED = 13;
/** Text hidden size (cross_attention_dim); SD 1.x has 768, SD 2.x 1024. */
export const TINY_SD_HIDDEN = 32;
export const TINY_SD_LATENT_CHANNELS = 4;
/** Pixels per latent cell along each side. */
export const TINY_SD_VAE_FACTOR = 8;
/** SD 1.x's VAE scaling factor: the sampler's latents are the VAE's times this. */
export const TINY_SD_SCALING_FACTOR = 0.18215;
/** UNet feature channels. */
export const UNET_CHANNELS = 16;

/**
 * SD's 4×3 latent → RGB preview factors, the ones the preview uses: the tiny
 * VAE decoder is built around them, so a cheap preview looks like the decoded image.
 */
export const LATENT_RGB_FACTORS = SD15_LATENT_RGB_FACTORS;

/**
 * How the exported interfaces look. The defaults are what the built-in model
 * ships; the other values reproduce other exporters' choices, so the loader
 * can be tested against each.
 */
export interface TinySdOptions {
  seed?: number;
  /** fp16: every float input and output is float16 (as `--fp16` / `--dtype fp16` exports); weights stay float32 inside. */
  precision?: Precision;
  /** text_encoder input_ids: int32 (diffusers' conversion script) or int64 (Optimum). */
  inputIds?: 'int32' | 'int64';
  /**
   * UNet timestep: 'scalar' = float, rank 0 (Optimum ≥ 1.24, `optimum-cli export onnx`);
   * 'batch' = float [batch] (diffusers' script); 'int64' = int64 [steps] (Optimum < 1.24).
   */
  timestep?: 'scalar' | 'batch' | 'int64';
  /** vae_encoder output: in-graph sample (diffusers' script) or [mean, logvar] (Optimum ≥ 1.23). */
  vaeEncoderOutput?: 'latent_sample' | 'latent_parameters';
}

export type ResolvedTinySdOptions = Required<TinySdOptions>;

export function resolveTinySdOptions(o: TinySdOptions = {}): ResolvedTinySdOptions {
  return {
    seed: o.seed ?? TINY_SD_SEED,
    precision: o.precision ?? 'fp32',
    inputIds: o.inputIds ?? 'int32',
    timestep: o.timestep ?? 'scalar',
    vaeEncoderOutput: o.vaeEncoderOutput ?? 'latent_sample',
  };
}

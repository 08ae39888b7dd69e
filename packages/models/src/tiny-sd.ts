/**
 * nightshift-tiny-sd: the built-in *test* diffusion model, laid out as a
 * diffusers ONNX export (`optimum-cli export onnx`):
 *
 *   model_index.json
 *   scheduler/scheduler_config.json       EulerDiscreteScheduler, SD 1.x betas
 *   tokenizer/                            CLIP BPE tokenizer files
 *   text_encoder/model.onnx, config.json  input_ids → last_hidden_state, pooler_output
 *   unet/model.onnx, config.json          sample, timestep, encoder_hidden_states → out_sample
 *   vae_decoder/model.onnx, config.json   latent_sample → sample
 *   vae_encoder/model.onnx, config.json   sample → latent_sample
 *
 * Same input and output names, dtypes and dynamic axes as a real export; tiny
 * random-but-fixed weights, so every path of the ONNX backend (tokenize,
 * encode, sample with any scheduler, decode, img2img) runs anywhere in
 * milliseconds. It is not a trained model and makes no pictures of anything.
 * Everything is deterministic: the same code writes the same bytes.
 */
import path from 'node:path';
import { ensureFolder, writeFolder } from './model-folder.js';
import {
  resolveTinySdOptions,
  TINY_SD_HIDDEN,
  TINY_SD_LATENT_CHANNELS,
  TINY_SD_NAME,
  TINY_SD_SCALING_FACTOR,
  TINY_SD_VERSION,
  type TinySdOptions,
  UNET_CHANNELS,
} from './tiny-sd-config.js';
import { buildTextEncoder } from './tiny-sd-text.js';
import { MAX_TOKENS, tinySdVocab, tokenizerFiles } from './tiny-sd-tokenizer.js';
import { buildUnet } from './tiny-sd-unet.js';
import { buildVaeDecoder, buildVaeEncoder } from './tiny-sd-vae.js';

export {
  LATENT_RGB_FACTORS,
  TINY_SD_HIDDEN,
  TINY_SD_LATENT_CHANNELS,
  TINY_SD_NAME,
  TINY_SD_SCALING_FACTOR,
  TINY_SD_VAE_FACTOR,
  TINY_SD_VERSION,
} from './tiny-sd-config.js';
export type { TinySdOptions } from './tiny-sd-config.js';

const DIFFUSERS_VERSION = '0.30.0';

/** The folder's files in memory (relative path → content). */
export function tinySdFiles(options: TinySdOptions = {}): Map<string, string | Uint8Array> {
  const o = resolveTinySdOptions(options);
  const vocabSize = tinySdVocab().size;
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  const out = new Map<string, string | Uint8Array>();
  out.set(
    'model_index.json',
    json({
      _class_name: 'StableDiffusionPipeline',
      _diffusers_version: DIFFUSERS_VERSION,
      _name_or_path: TINY_SD_NAME,
      _nightshift: {
        name: TINY_SD_NAME,
        version: TINY_SD_VERSION,
        description: 'Test model with the diffusers ONNX layout and random fixed weights; not a trained Stable Diffusion.',
        options: o,
      },
      feature_extractor: [null, null],
      requires_safety_checker: false,
      safety_checker: [null, null],
      scheduler: ['diffusers', 'EulerDiscreteScheduler'],
      text_encoder: ['transformers', 'CLIPTextModel'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      unet: ['diffusers', 'UNet2DConditionModel'],
      vae_decoder: ['diffusers', 'AutoencoderKL'],
      vae_encoder: ['diffusers', 'AutoencoderKL'],
    }),
  );
  out.set(
    'scheduler/scheduler_config.json',
    json({
      _class_name: 'EulerDiscreteScheduler',
      _diffusers_version: DIFFUSERS_VERSION,
      beta_end: 0.012,
      beta_schedule: 'scaled_linear',
      beta_start: 0.00085,
      clip_sample: false,
      interpolation_type: 'linear',
      num_train_timesteps: 1000,
      prediction_type: 'epsilon',
      set_alpha_to_one: false,
      skip_prk_steps: true,
      steps_offset: 1,
      timestep_spacing: 'linspace',
      trained_betas: null,
      use_karras_sigmas: false,
    }),
  );
  for (const [rel, content] of tokenizerFiles()) out.set(`tokenizer/${rel}`, content);
  out.set(
    'text_encoder/config.json',
    json({
      architectures: ['CLIPTextModel'],
      model_type: 'clip_text_model',
      hidden_size: TINY_SD_HIDDEN,
      intermediate_size: 4 * TINY_SD_HIDDEN,
      max_position_embeddings: MAX_TOKENS,
      num_attention_heads: 1,
      num_hidden_layers: 1,
      vocab_size: vocabSize,
      bos_token_id: vocabSize - 2,
      eos_token_id: vocabSize - 1,
      pad_token_id: vocabSize - 1,
      torch_dtype: o.precision === 'fp16' ? 'float16' : 'float32',
    }),
  );
  out.set('text_encoder/model.onnx', buildTextEncoder(o, vocabSize));
  out.set(
    'unet/config.json',
    json({
      _class_name: 'UNet2DConditionModel',
      _diffusers_version: DIFFUSERS_VERSION,
      in_channels: TINY_SD_LATENT_CHANNELS,
      out_channels: TINY_SD_LATENT_CHANNELS,
      sample_size: 8,
      cross_attention_dim: TINY_SD_HIDDEN,
      block_out_channels: [UNET_CHANNELS],
      time_cond_proj_dim: null,
    }),
  );
  out.set('unet/model.onnx', buildUnet(o));
  const vaeConfig = json({
    _class_name: 'AutoencoderKL',
    _diffusers_version: DIFFUSERS_VERSION,
    in_channels: 3,
    out_channels: 3,
    latent_channels: TINY_SD_LATENT_CHANNELS,
    // Four blocks: three ×2 steps, the ×8 that diffusers derives from this length.
    block_out_channels: [8, 8, 8, 8],
    sample_size: 64,
    scaling_factor: TINY_SD_SCALING_FACTOR,
  });
  out.set('vae_decoder/config.json', vaeConfig);
  out.set('vae_decoder/model.onnx', buildVaeDecoder(o));
  out.set('vae_encoder/config.json', vaeConfig);
  out.set('vae_encoder/model.onnx', buildVaeEncoder(o));
  return out;
}

/** Writes the model folder into outDir (variants by `options`, for tests). */
export async function buildTinySd(outDir: string, options: TinySdOptions = {}): Promise<void> {
  await writeFolder(outDir, tinySdFiles(options));
}

/**
 * Makes sure `<modelsDir>/nightshift-tiny-sd` holds the current build and
 * returns its absolute path; builds only when it is missing or differs, and
 * atomically (a temporary sibling renamed into place).
 */
export async function ensureTinySd(modelsDir: string): Promise<string> {
  return ensureFolder(path.join(modelsDir, TINY_SD_NAME), tinySdFiles());
}

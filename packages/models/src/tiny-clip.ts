/**
 * nightshift-tiny-clip: the built-in *test* model with the CLIP folder layout.
 *
 * It is not a real CLIP and is never described as one. Its two towers embed
 * into one small, hand-made concept space (one dimension per palette colour,
 * one per shape, one "other"), so that the real loading and search path
 * (transformers.js + onnxruntime-node) can be exercised offline, end to end:
 * the text "red" lands near images that contain the palette's red.
 *
 * Everything here is deterministic: the same code writes the same bytes.
 *
 * The concept space is in tiny-clip-concepts.ts, the text tower and tokenizer
 * in tiny-clip-text.ts, the vision tower in tiny-clip-vision.ts; this file
 * lays out the model folder.
 */
import path from 'node:path';
import { ensureFolder, writeFolder } from './model-folder.js';
import { TINY_CLIP_CONCEPTS, TINY_CLIP_DIM, TINY_CLIP_IMAGE_SIZE, TINY_CLIP_NAME, TINY_CLIP_VERSION } from './tiny-clip-concepts.js';
import { buildTextModel, buildTextVocab, MAX_TEXT_TOKENS, tokenizerJson } from './tiny-clip-text.js';
import { buildVisionModel } from './tiny-clip-vision.js';

export { TINY_CLIP_CONCEPTS, TINY_CLIP_DIM, TINY_CLIP_IMAGE_SIZE, TINY_CLIP_NAME, TINY_CLIP_VERSION } from './tiny-clip-concepts.js';

function files(): Map<string, string | Uint8Array> {
  const tv = buildTextVocab();
  const out = new Map<string, string | Uint8Array>();
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  out.set(
    'config.json',
    json({
      architectures: ['CLIPModel'],
      model_type: 'clip',
      projection_dim: TINY_CLIP_DIM,
      logit_scale_init_value: 2.6592,
      text_config: {
        model_type: 'clip_text_model',
        vocab_size: tv.rows.length,
        hidden_size: TINY_CLIP_DIM,
        projection_dim: TINY_CLIP_DIM,
        max_position_embeddings: MAX_TEXT_TOKENS,
        num_hidden_layers: 0,
        num_attention_heads: 1,
        intermediate_size: TINY_CLIP_DIM,
        pad_token_id: tv.vocab.get('[PAD]'),
        bos_token_id: tv.vocab.get('[CLS]'),
        eos_token_id: tv.vocab.get('[SEP]'),
      },
      vision_config: {
        model_type: 'clip_vision_model',
        image_size: TINY_CLIP_IMAGE_SIZE,
        patch_size: TINY_CLIP_IMAGE_SIZE,
        num_channels: 3,
        hidden_size: TINY_CLIP_DIM,
        projection_dim: TINY_CLIP_DIM,
        num_hidden_layers: 0,
        num_attention_heads: 1,
        intermediate_size: TINY_CLIP_DIM,
      },
      'transformers.js_config': { dtype: 'fp32' },
      nightshift: {
        name: TINY_CLIP_NAME,
        version: TINY_CLIP_VERSION,
        description: 'Procedural test model with the CLIP folder layout; not a real CLIP. Dimensions are hand-made concepts.',
        concepts: TINY_CLIP_CONCEPTS,
      },
    }),
  );
  out.set('tokenizer.json', json(tokenizerJson(tv)));
  out.set(
    'tokenizer_config.json',
    json({
      tokenizer_class: 'PreTrainedTokenizerFast',
      model_max_length: MAX_TEXT_TOKENS,
      do_lower_case: true,
      padding_side: 'right',
      pad_token: '[PAD]',
      unk_token: '[UNK]',
      bos_token: '[CLS]',
      eos_token: '[SEP]',
      clean_up_tokenization_spaces: true,
    }),
  );
  out.set(
    'preprocessor_config.json',
    json({
      image_processor_type: 'CLIPImageProcessor',
      do_convert_rgb: true,
      do_resize: true,
      size: { shortest_edge: TINY_CLIP_IMAGE_SIZE },
      // Bilinear (2): keeps flat colours flat, unlike bicubic's overshoot.
      resample: 2,
      do_center_crop: true,
      crop_size: { height: TINY_CLIP_IMAGE_SIZE, width: TINY_CLIP_IMAGE_SIZE },
      do_rescale: true,
      rescale_factor: 1 / 255,
      // Identity normalisation: the model wants plain 0..1 RGB.
      do_normalize: true,
      image_mean: [0, 0, 0],
      image_std: [1, 1, 1],
    }),
  );
  out.set('onnx/text_model.onnx', buildTextModel(tv));
  out.set('onnx/vision_model.onnx', buildVisionModel());
  return out;
}

/** Writes the model folder (config, tokenizer, preprocessor, onnx/*.onnx) into outDir. */
export async function buildTinyClip(outDir: string): Promise<void> {
  await writeFolder(outDir, files());
}

/** The folder's files in memory (relative path → content), for comparisons without touching disk. */
export function tinyClipFiles(): Map<string, string | Uint8Array> {
  return files();
}

/**
 * Makes sure `<modelsDir>/nightshift-tiny-clip` holds the current build and
 * returns its absolute path. Builds only when the folder is missing or differs
 * from what this version writes (a version bump changes config.json, so it is
 * covered), atomically (model-folder.ts).
 */
export async function ensureTinyClip(modelsDir: string): Promise<string> {
  return ensureFolder(path.resolve(modelsDir, TINY_CLIP_NAME), files());
}

/**
 * @nightshift/models: the project's own small ONNX models, the CLIP embedder
 * that loads them (or a real CLIP export) through transformers.js, and the
 * procedural painter whose pictures the tiny CLIP model knows.
 */
export { buildTinyClip, ensureTinyClip, TINY_CLIP_CONCEPTS, TINY_CLIP_DIM, TINY_CLIP_IMAGE_SIZE, TINY_CLIP_NAME, TINY_CLIP_VERSION, tinyClipFiles } from './tiny-clip.js';
export { bilinearDown, ClipEmbedder, cosine, decodePlainPng, normalise, plainPngSize } from './embed.js';
export type { ClipEmbedderOptions, HubOptions, PreparedImage } from './embed.js';
export { attr, DataType, GraphBuilder } from './onnx-builder.js';
export type { AttrValue, Dim, ModelOptions } from './onnx-builder.js';
export { MAX_SIDE, MAX_STEPS, MIN_SIDE, renderProcedural, validateRenderInput } from './painter/render.js';
export type { ProceduralImage } from './painter/render.js';
export { parseScene } from './painter/scene.js';
export type { SceneObject } from './painter/scene.js';
export { encodePng } from './painter/encode.js';
export { PreviewRamp } from './painter/preview.js';
export type { PreviewOptions } from './painter/preview.js';
export {
  buildTinyUpscaler,
  ensureTinyUpscaler,
  tinyUpscalerBytes,
  TINY_UPSCALER_FILE,
  TINY_UPSCALER_NAME,
  TINY_UPSCALER_SCALE,
  TINY_UPSCALER_VERSION,
} from './tiny-upscaler.js';
export {
  buildTinySd,
  ensureTinySd,
  TINY_SD_HIDDEN,
  TINY_SD_LATENT_CHANNELS,
  TINY_SD_NAME,
  TINY_SD_SCALING_FACTOR,
  TINY_SD_VAE_FACTOR,
  TINY_SD_VERSION,
  tinySdFiles,
} from './tiny-sd.js';
export type { TinySdOptions } from './tiny-sd.js';
export {
  ensureTinyAesthetic,
  TINY_AESTHETIC_FILE,
  TINY_AESTHETIC_NAME,
  TINY_AESTHETIC_VERSION,
  tinyAestheticBytes,
  tinyAestheticWeights,
} from './tiny-aesthetic.js';
export type { TinyAestheticWeights } from './tiny-aesthetic.js';
export { inspectSdFolder, SdModelError } from './sd-folder.js';
export type { SdComponent, SdFolder } from './sd-folder.js';
export { onnxExecutionProviders, SdModel } from './sd-model.js';
export type { FloatTensor, SdLoadOptions, TextEncoding } from './sd-model.js';
export { SdTokenizer } from './sd-tokenize.js';
export { float16Bits, float16Value, fromFloat16, toFloat16 } from './float16.js';

// @nightshift/diffusion: the pure math of Stable Diffusion sampling (no
// onnxruntime): torch's CPU RNG for seeds that match diffusers/ComfyUI,
// schedulers, classifier-free guidance, latent previews and sampler names.
export { TorchGenerator, batchNoise, type NoiseSource, type NormalKernel } from './rng/torch-generator.js';
export { MT19937 } from './rng/mt19937.js';
export { NoiseWorkers, localNoiseStream, type NoisePlan, type NoiseStream } from './rng/noise-workers.js';
export { SAMPLERS, A1111_SAMPLER_NAMES, isSamplerName, unknownSamplerMessage, type SamplerName } from './samplers.js';
export {
  parseSchedulerConfig,
  DEFAULT_SCHEDULER_CONFIG,
  SchedulerConfigError,
  type SchedulerConfig,
  type BetaSchedule,
  type PredictionType,
  type TimestepSpacing,
} from './schedulers/config.js';
export type { Scheduler, StepOutput } from './schedulers/types.js';
export { createScheduler, img2imgStartIndex } from './schedulers/create.js';
export { EulerScheduler } from './schedulers/euler.js';
export { EulerAncestralScheduler } from './schedulers/euler-ancestral.js';
export { DdimScheduler, type DdimOptions } from './schedulers/ddim.js';
export { DpmPp2mScheduler } from './schedulers/dpmpp-2m.js';
export { LcmScheduler } from './schedulers/lcm.js';
export { combineGuidance, duplicateForGuidance, usesGuidance } from './guidance.js';
export { latentToRgb, SD15_LATENT_RGB_FACTORS, type RgbImage } from './preview.js';
export { SD_LATENT_SCALING, scaleAfterEncode, unscaleForDecode } from './latent-scale.js';
export { guidanceScaleEmbedding } from './lcm-embedding.js';

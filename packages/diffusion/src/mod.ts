// @nightshift/diffusion: the pure math of Stable Diffusion sampling (no
// onnxruntime): torch's CPU RNG for seeds that match diffusers/ComfyUI,
// schedulers, classifier-free guidance, latent previews and sampler names.
export { TorchGenerator, type NoiseSource, type NormalKernel } from './rng/torch-generator.js';
export { MT19937 } from './rng/mt19937.js';

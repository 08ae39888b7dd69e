// SD's VAE latent scaling: latents live at z·0.18215 of the VAE's own latent
// space (the SD 1.x/2.x VAE's `scaling_factor`, diffusers
// AutoencoderKL config; the ONNX pipelines hard-code 1/0.18215 before
// decoding). Decode: vae_decoder(latent / f); encode: vae_encoder(image)·f.
import { mapF32 } from './map-f32.js';
export const SD_LATENT_SCALING = 0.18215;

export function unscaleForDecode(latent: Float32Array, factor = SD_LATENT_SCALING): Float32Array {
  return mapF32(latent, (v) => v / factor);
}

export function scaleAfterEncode(latent: Float32Array, factor = SD_LATENT_SCALING): Float32Array {
  return mapF32(latent, (v) => v * factor);
}

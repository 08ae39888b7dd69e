// The guidance-scale embedding an LCM UNet takes as `timestep_cond` (its
// guidance is distilled in; there is no unconditional pass): diffusers'
// LatentConsistencyModelPipeline.get_guidance_scale_embedding
// (pipelines/latent_consistency_models/pipeline_latent_consistency_text2img.py),
// from VDM (Kingma et al. 2021) sinusoidal embeddings, with w = guidance − 1:
//   f_j = exp(−j·ln 10000/(d/2 − 1)),  e = [sin(1000w·f_j)…, cos(1000w·f_j)…] (zero-padded to odd d)
// in float32 as torch computes it. d is the UNet's time_cond_proj_dim.
import { f32 } from './rng/float32.js';

/** [batch, dim] row-major, every row the same embedding. */
export function guidanceScaleEmbedding(guidanceScale: number, dim: number, batch = 1): Float32Array {
  if (!Number.isInteger(dim) || dim < 4) throw new RangeError(`embedding dim must be an integer ≥ 4, got ${dim}`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
  const half = Math.floor(dim / 2);
  const w = f32(f32(guidanceScale - 1) * 1000);
  const step = f32(f32(Math.log(10000)) / (half - 1));
  const row = new Float32Array(dim);
  for (let j = 0; j < half; j++) {
    const arg = f32(w * f32(Math.exp(f32(j * -step))));
    row[j] = Math.sin(arg);
    row[half + j] = Math.cos(arg);
  }
  const out = new Float32Array(batch * dim);
  for (let b = 0; b < batch; b++) out.set(row, b * dim);
  return out;
}

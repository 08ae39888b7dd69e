// Sampler name → scheduler over a model's scheduler_config.json. The name
// picks the algorithm and, for DPM++ 2M, whether Karras sigmas are used (as
// A1111's names do); everything else (betas, prediction type, spacing, offset)
// comes from the model's config, class defaults filling what it leaves out.
import type { SamplerName } from '../samplers.js';
import type { SchedulerConfig } from './config.js';
import { DdimScheduler } from './ddim.js';
import { DpmPp2mScheduler } from './dpmpp-2m.js';
import { EulerAncestralScheduler } from './euler-ancestral.js';
import { EulerScheduler } from './euler.js';
import { LcmScheduler } from './lcm.js';
import type { Scheduler } from './types.js';

export function createScheduler(sampler: SamplerName, config: SchedulerConfig, steps: number): Scheduler {
  switch (sampler) {
    case 'euler':
      return new EulerScheduler(config, steps);
    case 'euler_a':
      return new EulerAncestralScheduler(config, steps);
    case 'ddim':
      return new DdimScheduler(config, steps);
    case 'dpmpp_2m':
      return new DpmPp2mScheduler(config, steps, false);
    case 'dpmpp_2m_karras':
      return new DpmPp2mScheduler(config, steps, true);
    case 'lcm':
      return new LcmScheduler(config, steps);
  }
}

/**
 * img2img (diffusers' StableDiffusionImg2ImgPipeline.get_timesteps): with strength s the run skips the first
 * N − min(⌊N·s⌋, N) steps; the start latent is addNoise(encoded, noise, startIndex). null: nothing to run.
 */
export function img2imgStartIndex(steps: number, strength: number): number | null {
  if (!(strength >= 0 && strength <= 1)) throw new RangeError(`strength must be within 0…1, got ${strength}`);
  const init = Math.min(Math.floor(steps * strength), steps);
  return init === 0 ? null : Math.max(steps - init, 0);
}

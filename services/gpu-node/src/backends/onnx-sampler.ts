/**
 * The sampler a model folder asks for when a job names none: its
 * scheduler_config.json's diffusers class. Classes we have no sampler for
 * (SD 1.5 ships PNDM) get Euler, diffusers' usual swap-in for them.
 */
import type { SamplerName } from '@nightshift/diffusion';

export function defaultSampler(schedulerConfig: Record<string, unknown>): SamplerName {
  const karras = schedulerConfig.use_karras_sigmas === true;
  switch (schedulerConfig._class_name) {
    case 'EulerAncestralDiscreteScheduler':
      return 'euler_a';
    case 'DDIMScheduler':
      return 'ddim';
    case 'DPMSolverMultistepScheduler':
      return karras ? 'dpmpp_2m_karras' : 'dpmpp_2m';
    case 'LCMScheduler':
      return 'lcm';
    default:
      return 'euler';
  }
}

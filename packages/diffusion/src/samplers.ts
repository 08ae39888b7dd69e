// Sampler names: ours (the sweep's params.sampler) and AUTOMATIC1111's, which
// go into the PNG's `parameters` text ("Sampler: Euler a") so A1111's PNG Info
// and other readers show them. A1111 names from its
// modules/sd_samplers_kdiffusion.py and sd_samplers_timesteps.py ("DPM++ 2M
// Karras" is the pre-1.9 spelling that readers of every version understand).

export const SAMPLERS = ['euler', 'euler_a', 'ddim', 'dpmpp_2m', 'dpmpp_2m_karras', 'lcm'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export const A1111_SAMPLER_NAMES: Readonly<Record<SamplerName, string>> = {
  euler: 'Euler',
  euler_a: 'Euler a',
  ddim: 'DDIM',
  dpmpp_2m: 'DPM++ 2M',
  dpmpp_2m_karras: 'DPM++ 2M Karras',
  lcm: 'LCM',
};

export function isSamplerName(name: unknown): name is SamplerName {
  return typeof name === 'string' && (SAMPLERS as readonly string[]).includes(name);
}

/** The message a 400 carries for an unknown sampler: it lists the valid ones. */
export function unknownSamplerMessage(name: unknown): string {
  return `unknown sampler ${JSON.stringify(name)}; valid samplers: ${SAMPLERS.join(', ')}`;
}

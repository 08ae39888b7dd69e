/**
 * Remix from an A1111-style `parameters` chunk: AUTOMATIC1111's own images
 * and Nightshift's (the gpu-node writes the same layout plus a `Backend` key,
 * which A1111 never writes). A Nightshift image gives back its spec exactly,
 * so the remixed render has the original's renderKey; an A1111 image gives
 * the settings a farm generator understands.
 */
import { A1111_SAMPLER_NAMES, SAMPLERS } from '@nightshift/diffusion';
import { parseA1111Parameters } from './a1111.js';
import { numberOf, seedOf, specFromGeneration, type Generation, type Remix, type RemixScalar } from './remix-spec.js';

/** Keys with a field of their own (Nightshift's writer and A1111's create_infotext). */
const NIGHTSHIFT_KEYS = new Set(['Steps', 'CFG scale', 'Seed', 'Size', 'Model', 'Backend']);

/** A1111 keys whose spec param has another name than the key in snake case. */
const A1111_RENAMED: Record<string, string> = {
  'Schedule type': 'scheduler',
  'Denoising strength': 'denoise',
  'Clip skip': 'clip_skip',
};
/** Keys with a field of their own, and keys that identify files and versions rather than set the render. */
const A1111_NOT_PARAMS = new Set(['Steps', 'Sampler', 'CFG scale', 'Seed', 'Size', 'Model', 'Model hash', 'VAE hash', 'Version', 'User', 'Lora hashes', 'TI hashes', 'Hashes']);

const SIZE_RE = /^(\d+)x(\d+)$/;

/**
 * A value exactly as Nightshift's writer turned it into text: numbers by
 * String(n), booleans as true/false. Anything else stays a string.
 */
function nightshiftValue(s: string): RemixScalar {
  if (s === 'true') return true;
  if (s === 'false') return false;
  const n = Number(s);
  return s.trim() !== '' && Number.isFinite(n) && String(n) === s ? n : s;
}

/** A1111's values are Python's str(): "7.0" is a number too. */
const a1111Value = (s: string): RemixScalar => numberOf(s) ?? (s === 'True' ? true : s === 'False' ? false : s);

/** "Hires upscaler" → "hires_upscaler": spec param keys are the backend's names, lowercase by convention. */
const snake = (k: string) => k.trim().toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');

/**
 * The onnx backend writes three of its params as A1111 does (gpu-node
 * worker.ts): params.negative_prompt as the `Negative prompt:` line,
 * params.sampler as `Sampler: Euler a`, plus the `Model hash` it computed.
 * A render that left the sampler to the model's scheduler_config comes back
 * with it named: same pixels, another renderKey.
 */
function fromOnnxInfotext(negativePrompt: string, params: Record<string, RemixScalar>): void {
  delete params['Model hash'];
  const sampler = SAMPLERS.find((s) => A1111_SAMPLER_NAMES[s] === params.Sampler);
  if (params.Sampler !== undefined) {
    if (sampler) params.sampler = sampler;
    delete params.Sampler;
  }
  if (negativePrompt) params.negative_prompt = negativePrompt;
}

/** Undefined when the text has no settings line (not A1111's layout). */
export function remixFromParameters(text: string, fallbackSize: { width: number; height: number }): Remix | undefined {
  const parsed = parseA1111Parameters(text);
  const p = parsed.params;
  if (!Object.keys(p).length) return undefined;
  const size = SIZE_RE.exec(p.Size ?? '');
  const notes: string[] = [];

  if (p.Backend !== undefined) {
    const params: Record<string, RemixScalar> = {};
    if (size) {
      params.width = Number(size[1]);
      params.height = Number(size[2]);
    }
    if (p.Steps !== undefined) params.steps = nightshiftValue(p.Steps);
    if (p['CFG scale'] !== undefined) params.guidance = nightshiftValue(p['CFG scale']);
    for (const [k, v] of Object.entries(p)) if (!NIGHTSHIFT_KEYS.has(k)) params[k] = nightshiftValue(v);
    if (p.Backend === 'onnx') fromOnnxInfotext(parsed.negativePrompt, params);
    return {
      source: 'nightshift',
      notes,
      spec: {
        prompts: [parsed.prompt],
        seeds: [seedOf(numberOf(p.Seed), notes)],
        params,
        backend: p.Backend,
        ...(p.Model ? { model: p.Model } : {}),
      },
    };
  }

  const extra: Record<string, RemixScalar> = {};
  const skipped: string[] = [];
  for (const [k, v] of Object.entries(p)) {
    if (A1111_NOT_PARAMS.has(k)) continue;
    const name = A1111_RENAMED[k] ?? snake(k);
    if (name && !SIZE_RE.test(v)) extra[name] = a1111Value(v);
    else skipped.push(k);
  }
  if (skipped.length) notes.push(`not carried over: ${skipped.join(', ')}`);
  const gen: Generation = {
    prompt: parsed.prompt,
    negativePrompt: parsed.negativePrompt,
    seed: numberOf(p.Seed),
    width: size ? Number(size[1]) : undefined,
    height: size ? Number(size[2]) : undefined,
    steps: numberOf(p.Steps),
    guidance: numberOf(p['CFG scale']),
    sampler: p.Sampler,
    model: p.Model,
    extra,
  };
  return { source: 'a1111', notes, spec: specFromGeneration(gen, fallbackSize, notes) };
}

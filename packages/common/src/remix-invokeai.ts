/**
 * Remix from InvokeAI's chunks. v3 and later write `invokeai_metadata`, the
 * CoreMetadata model as JSON (positive_prompt, negative_prompt, width,
 * height, seed, cfg_scale, steps, scheduler, clip_skip, model as
 * {name, …} from v4 or {model_name, …} in v3); v2 wrote `sd-metadata`
 * ({model_id?, image: {prompt: [{prompt, weight}], seed, steps, cfg_scale,
 * width, height, sampler}}).
 */
import { numberOf, type Generation, type RemixScalar } from './remix-spec.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** `invokeai_metadata` (v3+), or undefined when the JSON has no prompt. */
export function invokeGeneration(json: unknown): Generation | undefined {
  if (!isObject(json) || typeof json.positive_prompt !== 'string') return undefined;
  const model = isObject(json.model) ? str(json.model.name) ?? str(json.model.model_name) : str(json.model);
  const extra: Record<string, RemixScalar> = {};
  const clipSkip = numberOf(json.clip_skip);
  if (clipSkip) extra.clip_skip = clipSkip;
  const strength = numberOf(json.strength);
  if (strength !== undefined && json.generation_mode !== 'txt2img') extra.denoise = strength;
  return {
    prompt: json.positive_prompt,
    negativePrompt: str(json.negative_prompt),
    seed: numberOf(json.seed),
    width: numberOf(json.width),
    height: numberOf(json.height),
    steps: numberOf(json.steps),
    guidance: numberOf(json.cfg_scale),
    scheduler: str(json.scheduler),
    model,
    extra,
  };
}

/** v2's `sd-metadata`, or undefined when it has no image prompt. */
export function invokeV2Generation(json: unknown): Generation | undefined {
  if (!isObject(json) || !isObject(json.image)) return undefined;
  const image = json.image;
  const prompt = Array.isArray(image.prompt) ? image.prompt.map((p) => (isObject(p) ? str(p.prompt) : undefined)).filter((p) => p !== undefined).join(' ') : str(image.prompt);
  if (!prompt) return undefined;
  return {
    prompt,
    seed: numberOf(image.seed),
    width: numberOf(image.width),
    height: numberOf(image.height),
    steps: numberOf(image.steps),
    guidance: numberOf(image.cfg_scale),
    sampler: str(image.sampler),
    model: str(json.model_weights) ?? str(json.model_id),
  };
}

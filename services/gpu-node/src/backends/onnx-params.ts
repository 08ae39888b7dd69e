/**
 * What an `onnx` render job asks for, read from its params (the sweep spec's
 * contract, docs/design.md): size in multiples of 8, steps, guidance,
 * negative prompt, sampler, and img2img's init image and strength. Anything
 * out of range fails the job with a message naming the param.
 */
import { isSamplerName, unknownSamplerMessage, type SamplerName } from '@nightshift/diffusion';
import { RenderFailure, type RenderParams } from './backend.js';

/** A1111's default denoising strength for img2img. */
export const DEFAULT_STRENGTH = 0.75;
/** diffusers' default guidance scale. */
export const DEFAULT_GUIDANCE = 7.5;

export interface OnnxJobParams {
  width: number;
  height: number;
  steps: number;
  guidance: number;
  negativePrompt: string;
  /** undefined: the model's own scheduler (scheduler_config.json). */
  sampler: SamplerName | undefined;
  /** img2img: the init image reference (an `images/…png` key or its renderKey) and the denoising strength. */
  init: string | undefined;
  strength: number;
}

function fail(message: string): never {
  throw new RenderFailure(`invalid params for the onnx backend: ${message}`);
}

function side(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 8 || v % 8 !== 0) fail(`${name} must be a positive multiple of 8, got ${JSON.stringify(v)}`);
  return v;
}

export function readOnnxParams(params: RenderParams): OnnxJobParams {
  const { steps, guidance, negative_prompt: negative, sampler, init, strength } = params;
  if (typeof steps !== 'number' || !Number.isInteger(steps) || steps < 1) fail(`steps must be a positive integer, got ${JSON.stringify(steps)}`);
  if (guidance !== undefined && (typeof guidance !== 'number' || !Number.isFinite(guidance) || guidance < 0)) fail(`guidance must be a number ≥ 0, got ${JSON.stringify(guidance)}`);
  if (negative !== undefined && typeof negative !== 'string') fail('negative_prompt must be text');
  if (sampler !== undefined && !isSamplerName(sampler)) fail(unknownSamplerMessage(sampler));
  if (init !== undefined && (typeof init !== 'string' || init === '')) fail('init must be an image key (images/….png)');
  if (strength !== undefined && (typeof strength !== 'number' || !(strength >= 0 && strength <= 1))) fail(`strength must be within 0…1, got ${JSON.stringify(strength)}`);
  return {
    width: side('width', params.width),
    height: side('height', params.height),
    steps,
    guidance: guidance ?? DEFAULT_GUIDANCE,
    negativePrompt: negative ?? '',
    sampler,
    init,
    strength: strength ?? DEFAULT_STRENGTH,
  };
}

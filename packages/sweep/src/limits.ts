/**
 * Bounds on what one sweep may expand to, checked from the spec alone before
 * any job is built: a 2 KB spec whose template repeats {prompt} hundreds of
 * times must be refused in milliseconds, not after gigabytes of prompts.
 */
import { SpecError, type SweepSpec } from './spec.js';
import { DynamicSpec, type WildcardLists } from './wildcards.js';

export interface ExpansionLimits {
  /** Jobs per sweep (NIGHTSHIFT_MAX_JOBS). */
  maxJobs: number;
  /** Characters in one expanded prompt (NIGHTSHIFT_MAX_PROMPT_CHARS). */
  maxPromptChars: number;
  /** Characters in all of a sweep's expanded prompts together (NIGHTSHIFT_MAX_SWEEP_CHARS). */
  maxSweepChars: number;
}

export const DEFAULT_EXPANSION_LIMITS: ExpansionLimits = { maxJobs: 100_000, maxPromptChars: 4_000, maxSweepChars: 50_000_000 };

function factorSizes(spec: SweepSpec): number[] {
  const zipped = new Set(spec.zip ?? []);
  const sizes = Object.entries(spec.axes)
    .filter(([n]) => !zipped.has(n))
    .map(([, v]) => v.length);
  const firstZipped = spec.zip?.[0];
  if (firstZipped !== undefined && spec.axes[firstZipped]) sizes.push(spec.axes[firstZipped].length);
  return sizes;
}

/** Number of jobs the spec expands to, computed without expanding. */
export function countJobs(spec: SweepSpec): number {
  const seeds = Array.isArray(spec.seeds) ? spec.seeds.length : spec.seeds.count;
  return factorSizes(spec).reduce((n, size) => n * size, spec.prompts.length * seeds);
}

/**
 * The longest prompt the template can make of `prompt` (cleanup only
 * shortens): each placeholder filled with the longest value it can take, each
 * choice and list reference with its longest option (as many as its count).
 */
export function promptBound(spec: SweepSpec, prompt: string, lists?: WildcardLists): number {
  return boundOf(spec, new DynamicSpec({ ...spec, prompts: [prompt] }, lists), 0);
}

function boundOf(spec: SweepSpec, dyn: DynamicSpec, i: number): number {
  const longest = (axis: string) => Math.max(0, ...(spec.axes[axis] ?? []).map((v) => String(v).length));
  const prompt = dyn.promptBound(i);
  if (spec.template === undefined) {
    const textAxes = Object.keys(spec.axes).filter((n) => !n.startsWith('params.'));
    return textAxes.reduce((n, axis) => n + 2 + longest(axis), prompt);
  }
  return dyn.templateBound((name) => (name === 'prompt' ? prompt : longest(name)));
}

/**
 * Throws SpecError (with the field at fault) when the spec would expand past
 * `limits`, or uses a wildcard list that `lists` lacks.
 */
export function checkExpansion(spec: SweepSpec, limits: ExpansionLimits, lists?: WildcardLists): void {
  checkParsedExpansion(spec, limits, new DynamicSpec(spec, lists));
}

/** checkExpansion for a spec whose prompts are already parsed (expandSweep parses them once for both). */
export function checkParsedExpansion(spec: SweepSpec, limits: ExpansionLimits, dyn: DynamicSpec): void {
  const total = countJobs(spec);
  if (total > limits.maxJobs) {
    throw new SpecError('sweep too large', [{ path: '', message: `expands to ${total} jobs, more than the maximum of ${limits.maxJobs}` }]);
  }
  const perPrompt = total / spec.prompts.length;
  let sweepChars = 0;
  for (const i of spec.prompts.keys()) {
    const bound = boundOf(spec, dyn, i);
    if (bound > limits.maxPromptChars) {
      const [path, why] = spec.template === undefined ? [`prompts.${i}`, 'with its longest axis values'] : ['template', `filled with prompts.${i} and the longest axis values`];
      throw new SpecError('prompt too long', [
        { path, message: `expands to up to ${bound} characters ${why}, more than the maximum of ${limits.maxPromptChars}` },
      ]);
    }
    sweepChars += bound * perPrompt;
  }
  if (sweepChars > limits.maxSweepChars) {
    throw new SpecError('sweep too large', [
      { path: '', message: `its prompts expand to up to ${sweepChars} characters in all, more than the maximum of ${limits.maxSweepChars}` },
    ]);
  }
}

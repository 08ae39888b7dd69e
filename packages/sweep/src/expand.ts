/**
 * Deterministic expansion of a sweep spec into jobs: prompts × axes × seeds,
 * prompts outermost and seeds innermost, so job i of a sweep is always the
 * same render and a rerun can be matched job for job.
 */
import { ParamsSchema, SpecError, type SweepSpec } from './spec.js';
import { canonicalJson, renderKeyWithParams } from './canonical.js';
import { checkParsedExpansion, DEFAULT_EXPANSION_LIMITS, type ExpansionLimits } from './limits.js';
import { tidyPrompt } from './tidy.js';
import { DynamicSpec, type WildcardLists } from './wildcards.js';
import { jobRng, type ChoiceRng } from './wildcards-rng.js';

/**
 * The model name of the procedural painter (in @nightshift/models). Bump it
 * when the drawing changes, so render keys (which include the model) change
 * too. Defined here, the leaf package both the spec and the gpu-node use.
 */
export const PROCEDURAL_MODEL = 'procedural-v1';

/** The onnx backend's built-in model (@nightshift/models TINY_SD_NAME; not imported: this package stays free of onnxruntime). */
export const ONNX_DEFAULT_MODEL = 'nightshift-tiny-sd';

export const DEFAULT_MODELS: Record<string, string> = { procedural: PROCEDURAL_MODEL, exec: 'default', onnx: ONNX_DEFAULT_MODEL };

/** The model a sweep renders with: the one it names, else its backend's default ("default": the node's first). */
export function sweepModel(spec: Pick<SweepSpec, 'model' | 'backend'>): string {
  return spec.model ?? DEFAULT_MODELS[spec.backend] ?? 'default';
}

export interface ExpandedJob {
  index: number;
  prompt: string;
  seed: number;
  params: Record<string, unknown>;
  /** The axis values that produced this job (for X/Y views). */
  axes: Record<string, string | number>;
  backend: string;
  model: string;
  renderKey: string;
}

type AxisValue = string | number;
/** One "column" of the product: either one crossed axis, or a group of zipped axes. */
type Factor = { names: string[]; rows: AxisValue[][] };

function factors(spec: SweepSpec): Factor[] {
  const zipped = new Set(spec.zip ?? []);
  const out: Factor[] = [];
  const zipNames = Object.keys(spec.axes).filter((n) => zipped.has(n));
  if (zipNames.length) {
    const len = spec.axes[zipNames[0]!]!.length;
    out.push({ names: zipNames, rows: Array.from({ length: len }, (_, i) => zipNames.map((n) => spec.axes[n]![i]!)) });
  }
  for (const [name, values] of Object.entries(spec.axes)) {
    if (!zipped.has(name)) out.push({ names: [name], rows: values.map((v) => [v]) });
  }
  // Keep the spec's axis order for the product regardless of zipping.
  const order = Object.keys(spec.axes);
  return out.sort((a, b) => order.indexOf(a.names[0]!) - order.indexOf(b.names[0]!));
}

function seedList(spec: SweepSpec): number[] {
  const seeds = spec.seeds;
  return Array.isArray(seeds) ? seeds : Array.from({ length: seeds.count }, (_, i) => seeds.start + i);
}

/** Fills the template; empty axis values leave no dangling separators behind. */
export function applyTemplate(spec: SweepSpec, prompt: string, axes: Record<string, AxisValue>): string {
  return fillTemplate(spec, new DynamicSpec({ ...spec, prompts: [prompt] }), NO_CHOICES, prompt, axes);
}

/** For text without choices: a generator that is never asked. */
const NO_CHOICES: ChoiceRng = {
  int: () => {
    throw new Error('no choices to make');
  },
};

function fillTemplate(spec: SweepSpec, dyn: DynamicSpec, rng: ChoiceRng, prompt: string, axes: Record<string, AxisValue>): string {
  let text: string;
  if (spec.template === undefined) {
    const textAxes = Object.entries(axes).filter(([n]) => !n.startsWith('params.'));
    text = [prompt, ...textAxes.map(([, v]) => String(v))].filter((s) => s.trim() !== '').join(', ');
  } else {
    text = dyn.renderTemplate(rng, (key) => (key === 'prompt' ? prompt : String(axes[key] ?? '')));
  }
  return tidyPrompt(text);
}

/** The final prompt of one job whose prompt or template makes choices: from its own generator (prompt first, then template). */
function dynamicPrompt(spec: SweepSpec, dyn: DynamicSpec, promptIndex: number, seed: number, axes: Record<string, AxisValue>): string {
  const rng = jobRng(seed, promptIndex, axes);
  return fillTemplate(spec, dyn, rng, dyn.renderPrompt(promptIndex, rng), axes);
}

/**
 * Expands a validated spec. Throws SpecError, before building anything, when
 * it would exceed the limits (a number: maxJobs, the other limits default),
 * or uses a wildcard list (`__name__`) that `lists` lacks. Choices
 * (`{a|b}`, `__name__`) are made per job from its seed and place in the grid
 * (wildcards-rng.ts), so the same spec and lists always give the same jobs.
 */
export function expandSweep(spec: SweepSpec, limits: number | Partial<ExpansionLimits>, lists?: WildcardLists): ExpandedJob[] {
  return [...expandSweepLazily(spec, limits, lists).jobs];
}

/**
 * expandSweep's jobs, made one at a time as they are taken, and how many there
 * will be: a caller that stores them as it goes (the coordinator's submit)
 * never holds a 100,000-job sweep in memory. Everything that can reject the
 * spec (limits, wildcard lists, every params combination) is checked here, at
 * once, before the first job is made.
 */
export function expandSweepLazily(spec: SweepSpec, limits: number | Partial<ExpansionLimits>, lists?: WildcardLists): { total: number; jobs: Iterable<ExpandedJob> } {
  const dyn = new DynamicSpec(spec, lists);
  checkParsedExpansion(spec, { ...DEFAULT_EXPANSION_LIMITS, ...(typeof limits === 'number' ? { maxJobs: limits } : limits) }, dyn);
  const combos: Record<string, AxisValue>[] = [{}];
  for (const f of factors(spec)) {
    const next: Record<string, AxisValue>[] = [];
    for (const c of combos) for (const row of f.rows) next.push({ ...c, ...Object.fromEntries(f.names.map((n, i) => [n, row[i]!])) });
    combos.splice(0, combos.length, ...next);
  }
  const grid = combos.map((axes) => {
    const params = comboParams(spec, axes);
    return { axes, params, canonicalParams: canonicalJson(params) };
  });
  const seeds = seedList(spec);
  return { total: spec.prompts.length * grid.length * seeds.length, jobs: jobsOf(spec, dyn, grid, seeds) };
}

/** The params of one axes combination; axes may override params, so the merged result is validated again. */
function comboParams(spec: SweepSpec, axes: Record<string, AxisValue>): Record<string, unknown> {
  const params: Record<string, unknown> = { ...spec.params };
  for (const [n, v] of Object.entries(axes)) if (n.startsWith('params.')) params[n.slice('params.'.length)] = v;
  const checked = ParamsSchema.safeParse(params);
  if (!checked.success) {
    throw new SpecError(
      'invalid sweep spec',
      checked.error.issues.map((i) => ({ path: ['params', ...i.path.map(String)].join('.'), message: i.message })),
    );
  }
  return JSON.parse(canonicalJson(params)) as Record<string, unknown>;
}

/** Prompts outermost, seeds innermost; a combination's params and axes objects are shared by its jobs. */
function* jobsOf(spec: SweepSpec, dyn: DynamicSpec, grid: { axes: Record<string, AxisValue>; params: Record<string, unknown>; canonicalParams: string }[], seeds: number[]): Generator<ExpandedJob> {
  const backend = spec.backend;
  const model = sweepModel(spec);
  let index = 0;
  for (const [promptIndex, basePrompt] of spec.prompts.entries()) {
    for (const { axes, params, canonicalParams } of grid) {
      // Without choices the prompt is the same for every seed: made once.
      const fixed = dyn.dynamic ? undefined : fillTemplate(spec, dyn, NO_CHOICES, basePrompt, axes);
      for (const seed of seeds) {
        const prompt = fixed ?? dynamicPrompt(spec, dyn, promptIndex, seed, axes);
        yield { index: index++, prompt, seed, params, axes, backend, model, renderKey: renderKeyWithParams({ backend, model, prompt, seed }, canonicalParams) };
      }
    }
  }
}

/**
 * "What will this sweep be?" before it is submitted: the job count and a
 * sample of final prompts, computed by the same parseSpec/expandSweep the
 * coordinator uses on submit, so the preview can never disagree with it.
 * Accepts the spec as JSON or as pasted YAML/JSON text.
 */
import { checkExpansion, countJobs, expandSweep, type ExpansionLimits, parseSpec, parseSpecText as readText, SpecError, SpecTextError, type SweepSpec, type WildcardLists } from '@nightshift/sweep';

export interface SpecPreview {
  /** Jobs the spec expands to (prompts × axes × seeds). */
  jobs: number;
  maxJobs: number;
  /** Distinct final prompts in the sweep (ignoring seeds). */
  prompts: number;
  seeds: number;
  axes: string[];
  /** Up to `limit` final prompts, spread over the whole sweep. */
  samples: { prompt: string; axes: Record<string, string | number>; params: Record<string, unknown> }[];
  /** The spec as given (parsed from YAML when pasted), ready to POST /api/sweeps. */
  input: unknown;
}

/** Parses pasted text (YAML, which includes JSON); a syntax error names its line in the message. */
export function parseSpecText(text: string): unknown {
  try {
    return readText(text).input;
  } catch (err) {
    if (!(err instanceof SpecTextError)) throw err;
    const first = err.details[0];
    const where = first?.line ? `line ${first.line}, column ${first.column ?? 1}: ` : '';
    throw new SpecError('the pasted spec is not valid YAML or JSON', [{ path: '', message: `${where}${first?.message ?? ''}` }]);
  }
}

/** `lists`: the wildcard lists the spec uses, as a submission reads them, so the samples make the same choices. */
export function previewSpec(input: unknown, limits: ExpansionLimits, limit = 12, lists?: WildcardLists): SpecPreview {
  const spec = parseSpec(input);
  // The same bounds as a submission, so a preview cannot be the expansion bomb a submission refuses.
  checkExpansion(spec, limits, lists);
  const jobs = countJobs(spec);
  const maxJobs = limits.maxJobs;
  const seeds = Array.isArray(spec.seeds) ? spec.seeds.length : spec.seeds.count;
  // One seed is enough to see every final prompt; cap the work for huge grids.
  const oneSeed: SweepSpec = { ...spec, seeds: [Array.isArray(spec.seeds) ? spec.seeds[0]! : spec.seeds.start] };
  const distinct = countJobs(oneSeed);
  const sampled = distinct <= 20_000 ? oneSeed : { ...oneSeed, prompts: spec.prompts.slice(0, 3), axes: firstValues(spec, 20_000 / 3) };
  // Choices hang on each job's seed, prompt index and axis values (not its flat index), so this cut of the grid picks what the full one does.
  const expanded = expandSweep(sampled, { ...limits, maxJobs: Number.MAX_SAFE_INTEGER }, lists);
  const step = Math.max(1, expanded.length / limit);
  const samples: SpecPreview['samples'] = [];
  for (let i = 0; i < expanded.length && samples.length < limit; i += step) {
    const j = expanded[Math.floor(i)]!;
    samples.push({ prompt: j.prompt, axes: j.axes, params: j.params });
  }
  return { jobs, maxJobs, prompts: distinct, seeds, axes: Object.keys(spec.axes), samples, input };
}

/** The spec's axes trimmed so their product stays under `budget`. */
function firstValues(spec: SweepSpec, budget: number): SweepSpec['axes'] {
  const names = Object.keys(spec.axes);
  const per = Math.max(1, Math.floor(budget ** (1 / Math.max(1, names.length))));
  // Zipped axes stay the same length because every axis is cut to the same size.
  return Object.fromEntries(names.map((n) => [n, spec.axes[n]!.slice(0, per)]));
}

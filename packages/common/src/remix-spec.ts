/**
 * What every remix reader produces: one render's settings as read from a
 * PNG (`Generation`), and the sweep spec built from them. Common does not
 * depend on @nightshift/sweep, so the spec is the plain input shape that
 * `parseSpec` takes; the coordinator validates it.
 */

export const REMIX_SOURCES = ['nightshift', 'a1111', 'comfyui', 'invokeai'] as const;
export type RemixSource = (typeof REMIX_SOURCES)[number];
export type RemixScalar = string | number | boolean;

/** A sweep spec input (docs/design.md "Sweep spec"): one prompt, the image's seed, its settings. */
export interface RemixSpec {
  prompts: string[];
  seeds: number[];
  params: Record<string, RemixScalar>;
  backend: string;
  model?: string;
}

export interface Remix {
  spec: RemixSpec;
  source: RemixSource;
  /** What was changed or left out on the way (a seed folded to 32 bits, keys not carried), for people. */
  notes: string[];
}

/** One render's settings as another tool recorded them; `extra` holds backend params by their spec name. */
export interface Generation {
  prompt: string;
  negativePrompt?: string | undefined;
  seed?: number | undefined;
  width?: number | undefined;
  height?: number | undefined;
  steps?: number | undefined;
  guidance?: number | undefined;
  sampler?: string | undefined;
  scheduler?: string | undefined;
  model?: string | undefined;
  extra?: Record<string, RemixScalar>;
}

/** Nightshift seeds are 32-bit (the sweep spec's seed range); other tools' seeds can be 64-bit. */
const SEED_RANGE = 2 ** 32;
/** The sweep spec's limit on params (SPEC_LIMITS.paramKeys in @nightshift/sweep). */
const MAX_PARAMS = 32;

/** A finite number from a recorded value ("7", 7, "7.0"), else undefined. */
export function numberOf(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v !== 'string' || !/^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$/.test(v)) return undefined;
  return Number(v);
}

/** Checkpoint names without the file extension, as A1111 records them ("v1-5-pruned", not "v1-5-pruned.safetensors"). */
export function modelName(file: string): string {
  return file.replace(/\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$/i, '');
}

/**
 * The spec for re-rendering `gen` on the farm: its own seed, size and
 * settings, the exec backend (another tool's checkpoint is not the
 * procedural painter) and its model; the negative prompt, sampler and
 * scheduler travel as backend params.
 */
export function specFromGeneration(gen: Generation, fallbackSize: { width: number; height: number }, notes: string[]): RemixSpec {
  const params: Record<string, RemixScalar> = {};
  params.width = gen.width ?? fallbackSize.width;
  params.height = gen.height ?? fallbackSize.height;
  if (gen.width === undefined || gen.height === undefined) notes.push(`the metadata has no size: using the image's, ${params.width}x${params.height}`);
  if (gen.steps !== undefined) params.steps = gen.steps;
  if (gen.guidance !== undefined) params.guidance = gen.guidance;
  if (gen.negativePrompt) params.negative_prompt = gen.negativePrompt;
  if (gen.sampler) params.sampler = gen.sampler;
  if (gen.scheduler) params.scheduler = gen.scheduler;
  const dropped: string[] = [];
  for (const [k, v] of Object.entries(gen.extra ?? {})) {
    if (Object.hasOwn(params, k)) continue;
    if (Object.keys(params).length >= MAX_PARAMS) dropped.push(k);
    else params[k] = v;
  }
  if (dropped.length) notes.push(`more settings than a spec holds (${MAX_PARAMS}): left out ${dropped.join(', ')}`);
  return {
    prompts: [gen.prompt],
    seeds: [seedOf(gen.seed, notes)],
    params,
    backend: 'exec',
    ...(gen.model ? { model: gen.model } : {}),
  };
}

/** The seed as a Nightshift seed; a missing one becomes 0 and a 64-bit one is folded, each with a note. */
export function seedOf(seed: number | undefined, notes: string[]): number {
  if (seed === undefined || !Number.isInteger(seed)) {
    notes.push('the metadata has no seed: using 0');
    return 0;
  }
  if (seed >= 0 && seed < SEED_RANGE) return seed;
  const folded = ((seed % SEED_RANGE) + SEED_RANGE) % SEED_RANGE;
  notes.push(`seed ${seed} is outside Nightshift's 32-bit seeds: using ${folded} (the seed modulo 2^32)`);
  return folded;
}

/**
 * A generator as the node config describes it (argv template, environment,
 * limits, models, VRAM table) and what a job fills in: placeholder values,
 * the generator's environment, its VRAM need.
 */
import path from 'node:path';
import { z } from 'zod';
import type { RenderRequest } from './backend.js';

/** Placeholders a command argument may contain, as `{name}`. */
export const PLACEHOLDERS = ['prompt', 'seed', 'width', 'height', 'steps', 'guidance', 'output', 'preview', 'params', 'model', 'model_path'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
const PLACEHOLDER_RE = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

const SIZE_KEY = /^(default|[1-9][0-9]*x[1-9][0-9]*)$/;

export const GeneratorSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" and "-", at most 64'),
    /** argv template: the program, then its arguments. */
    command: z
      .array(z.string())
      .min(1, 'needs at least the program')
      .superRefine((argv, ctx) => {
        if (!argv[0]) ctx.addIssue({ code: 'custom', path: [0], message: 'program must not be empty' });
        argv.forEach((arg, i) => {
          for (const m of arg.matchAll(PLACEHOLDER_RE)) {
            if (!(PLACEHOLDERS as readonly string[]).includes(m[1]!)) {
              ctx.addIssue({ code: 'custom', path: [i], message: `unknown placeholder {${m[1]}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')})` });
            }
          }
        });
      }),
    /** Working folder (default: the job's temp folder). */
    cwd: z.string().min(1).optional(),
    /**
     * Run as this user (name or uid) so the generator cannot read the node's
     * secrets; the node must run as root. The temp folder must be reachable by it.
     */
    user: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$|^\d+$/, 'a user name or uid').optional(),
    /** Extra environment, over the node's own minus its NIGHTSHIFT_* settings. */
    env: z.record(z.string(), z.string()).default({}),
    timeoutMs: z.number().int().min(100).default(30 * 60_000),
    /** Model names this generator provides; the first is the default. The generator's name always selects it too. */
    models: z.array(z.string().min(1).max(200)).default([]),
    /** VRAM need in MiB by "WIDTHxHEIGHT", with an optional "default". */
    vramMb: z.record(z.string().regex(SIZE_KEY, 'keys are "WIDTHxHEIGHT" or "default"'), z.number().int().min(0)).optional(),
    /** Write the job's parameters as JSON and pass the path as {params} (also done whenever {params} is used). */
    paramsFile: z.boolean().default(false),
    /** Time between SIGTERM and SIGKILL. */
    killGraceMs: z.number().int().min(0).max(600_000).default(5_000),
  })
  .refine((g) => !g.cwd || path.isAbsolute(g.cwd), { path: ['cwd'], message: 'must be an absolute path (relative ones are resolved against the node config file)' });

export type GeneratorConfig = z.output<typeof GeneratorSchema>;
export type GeneratorInput = z.input<typeof GeneratorSchema>;

/** Substitutes `{name}` placeholders in one argument; values are inserted once, never re-scanned. */
export function substitute(arg: string, values: Record<Placeholder, string>): string {
  return arg.replace(PLACEHOLDER_RE, (whole, name: string) => (Object.hasOwn(values, name) ? values[name as Placeholder] : whole));
}

/**
 * The placeholder values of one job: its prompt and parameters, the model, the paths in its job folder,
 * and `modelPath`, the local path of the job's registry model (model-source.ts generatorModelPath).
 */
export function placeholderValues(req: RenderRequest, model: string, files: { output: string; preview: string; params: string }, modelPath = ''): Record<Placeholder, string> {
  const { width, height, steps, guidance } = req.params;
  return {
    prompt: req.prompt,
    seed: String(req.seed),
    width: String(width),
    height: String(height),
    steps: String(steps),
    guidance: guidance === undefined ? '' : String(guidance),
    output: files.output,
    preview: files.preview,
    params: files.params,
    model,
    model_path: modelPath,
  };
}

/** Whether the generator takes the local path of a registry model. */
export const takesModelPath = (gen: GeneratorConfig) => gen.command.some((a) => a.includes('{model_path}'));

/** Whether the generator gets its parameters as a JSON file. */
export function wantsParamsFile(gen: GeneratorConfig): boolean {
  return gen.paramsFile || gen.command.some((a) => a.includes('{params}'));
}

/** VRAM need from a generator's table: exact size, else the smallest listed size at least as large, else "default". */
export function vramFromTable(table: Record<string, number> | undefined, width: number, height: number): number | undefined {
  if (!table) return undefined;
  const exact = table[`${width}x${height}`];
  if (exact !== undefined) return exact;
  let best: { area: number; mb: number } | undefined;
  for (const [key, mb] of Object.entries(table)) {
    if (key === 'default') continue;
    const [w, h] = key.split('x').map(Number);
    const area = w! * h!;
    if (w! >= width && h! >= height && (!best || area < best.area)) best = { area, mb };
  }
  return best?.mb ?? table.default;
}

/** Environment a generator sees: never the node's own NIGHTSHIFT_* settings (tokens, storage keys). */
export function generatorEnv(base: NodeJS.ProcessEnv, gen: GeneratorConfig, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) if (!k.startsWith('NIGHTSHIFT_') && v !== undefined) env[k] = v;
  // Python block-buffers a piped stdout; progress lines must arrive as they happen.
  env.PYTHONUNBUFFERED = '1';
  return { ...env, ...gen.env, ...extra };
}

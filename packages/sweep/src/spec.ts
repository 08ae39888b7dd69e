/**
 * The sweep spec contract (docs/design.md "Sweep spec") as a zod schema. One
 * validator serves HTTP, gRPC, the CLI and the dashboard, so every entry point
 * gives the same readable errors.
 */
import { z } from 'zod';
import { isSamplerName, unknownSamplerMessage } from '@nightshift/diffusion';
import { templatePlaceholders } from './wildcards-parse.js';

export const BACKENDS = ['procedural', 'exec', 'onnx'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** Hard limits that keep one request from exhausting the coordinator. */
export const SPEC_LIMITS = {
  prompts: 10_000,
  promptLength: 2_000,
  axes: 8,
  axisValues: 1_000,
  seedsCount: 100_000,
  paramKeys: 32,
  minSize: 64,
  maxSize: 2048,
  maxSteps: 1_000,
  /** Images of one prompt a node renders in one UNet batch (params.batch). */
  maxBatch: 8,
} as const;

const promptText = z.string().trim().min(1, 'must not be empty').max(SPEC_LIMITS.promptLength, `at most ${SPEC_LIMITS.promptLength} characters`);
const axisValue = z.union([z.string().max(SPEC_LIMITS.promptLength), z.number().finite()]);
const size = z
  .number({ error: 'must be a number' })
  .int('must be an integer')
  .min(SPEC_LIMITS.minSize, `must be at least ${SPEC_LIMITS.minSize}`)
  .max(SPEC_LIMITS.maxSize, `must be at most ${SPEC_LIMITS.maxSize}`)
  .refine((v) => v % 8 === 0, 'must be a multiple of 8');

/**
 * The key shape A1111's infotext parser reads back, and the names its own
 * fields take. A copy of packages/common/src/a1111.ts's (sweep stays free of
 * common); a1111.test.ts fails if the two drift apart.
 */
export const PARAM_KEY = /^\w[\w \-/]*[\w\-/]$/;
export const A1111_FIELDS: ReadonlySet<string> = new Set(['Steps', 'Sampler', 'CFG scale', 'Seed', 'Size', 'Model hash', 'Model', 'Backend']);

const paramValue = z.union([z.string().max(1_000), z.number().finite(), z.boolean()]);

export const ParamsSchema = z
  .object({
    width: size.default(256),
    height: size.default(256),
    steps: z.number({ error: 'must be a number' }).int().min(1).max(SPEC_LIMITS.maxSteps).default(50),
    guidance: z.number({ error: 'must be a number' }).finite().min(0).max(100).default(7.5),
    // No default: a spec without it keeps the render keys it always had.
    batch: z.number({ error: 'must be a number' }).int('must be an integer').min(1, 'must be at least 1').max(SPEC_LIMITS.maxBatch, `must be at most ${SPEC_LIMITS.maxBatch}`).optional(),
  })
  .catchall(paramValue)
  .refine((p) => Object.keys(p).length <= SPEC_LIMITS.paramKeys, `at most ${SPEC_LIMITS.paramKeys} params`)
  // Every param is written into the PNG's A1111 text, whose parser reads only such keys: refuse the
  // others here, not as a failure of every job on the node.
  .superRefine((p, ctx) => {
    for (const key of Object.keys(p)) {
      if (!PARAM_KEY.test(key) || A1111_FIELDS.has(key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'param names are at least 2 letters, digits, "_", "-", "/" or inner spaces, and not an A1111 field name (Steps, Sampler, CFG scale, Seed, Size, Model, Model hash, Backend)' });
      }
    }
  });

const seedUint = z.number({ error: 'must be a number' }).int('must be an integer').min(0).max(2 ** 32 - 1);

export const SeedsSchema = z.union([
  z.strictObject({
    start: seedUint.default(0),
    count: z
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(1, 'must be at least 1')
      .max(SPEC_LIMITS.seedsCount, `at most ${SPEC_LIMITS.seedsCount}`),
  }),
  z.array(seedUint).min(1, 'needs at least one seed').max(SPEC_LIMITS.seedsCount),
]);

const axisName = z.string().regex(/^(params\.)?[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'axis names are identifiers, optionally prefixed with "params."');

export const SweepSpecSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    prompts: z.array(promptText, { error: 'must be a list of prompts' }).min(1, 'needs at least one prompt').max(SPEC_LIMITS.prompts),
    axes: z
      .record(axisName, z.array(axisValue).min(1, 'needs at least one value').max(SPEC_LIMITS.axisValues))
      .refine((a) => Object.keys(a).length <= SPEC_LIMITS.axes, `at most ${SPEC_LIMITS.axes} axes`)
      .default({}),
    /** Axis names whose values are paired position by position instead of crossed. */
    zip: z.array(z.string()).optional(),
    template: z.string().max(SPEC_LIMITS.promptLength).optional(),
    seeds: SeedsSchema,
    params: ParamsSchema.default({ width: 256, height: 256, steps: 50, guidance: 7.5 }),
    backend: z.enum(BACKENDS, { error: `backend must be one of: ${BACKENDS.join(', ')}` }).default('procedural'),
    model: z.string().min(1).max(200).optional(),
    priority: z.number().int().min(-100).max(100).default(0),
  })
  .superRefine((spec, ctx) => {
    const names = Object.keys(spec.axes);
    // Only the onnx backend renders several seeds in one pass; elsewhere the param would do nothing.
    if (spec.backend !== 'onnx' && (spec.params.batch !== undefined || names.includes('params.batch'))) {
      ctx.addIssue({ code: 'custom', path: spec.params.batch !== undefined ? ['params', 'batch'] : ['axes', 'params.batch'], message: 'only the onnx backend renders batches' });
    }
    if (spec.backend === 'onnx') {
      // The onnx backend's samplers are a closed set; exec generators name their own.
      const sampler = spec.params.sampler;
      if (sampler !== undefined && !isSamplerName(sampler)) ctx.addIssue({ code: 'custom', path: ['params', 'sampler'], message: unknownSamplerMessage(sampler) });
      for (const v of spec.axes['params.sampler'] ?? []) {
        if (!isSamplerName(v)) ctx.addIssue({ code: 'custom', path: ['axes', 'params.sampler'], message: unknownSamplerMessage(v) });
      }
    }
    if (spec.zip) {
      for (const n of spec.zip) if (!names.includes(n)) ctx.addIssue({ code: 'custom', path: ['zip'], message: `unknown axis "${n}"` });
      const lengths = new Set(spec.zip.map((n) => spec.axes[n]?.length));
      if (lengths.size > 1) ctx.addIssue({ code: 'custom', path: ['zip'], message: 'zipped axes must have the same number of values' });
    }
    if (spec.template !== undefined) {
      // Parsed as expansion reads it: `{a|b}` is a choice, a bare `{name}` a placeholder.
      let keys: string[];
      try {
        keys = templatePlaceholders(spec.template);
      } catch (err) {
        if (!(err instanceof SpecError)) throw err;
        for (const d of err.details) ctx.addIssue({ code: 'custom', path: ['template'], message: d.message });
        keys = [];
      }
      for (const key of keys) {
        if (key !== 'prompt' && !names.includes(key)) ctx.addIssue({ code: 'custom', path: ['template'], message: `unknown placeholder {${key}}` });
      }
    }
  });

export type SweepSpecInput = z.input<typeof SweepSpecSchema>;
export type SweepSpec = z.output<typeof SweepSpecSchema>;
export type RenderParamsSpec = z.output<typeof ParamsSchema>;

export interface SpecIssue {
  path: string;
  message: string;
}

export class SpecError extends Error {
  constructor(
    message: string,
    readonly details: SpecIssue[],
  ) {
    super(details.length ? `${message}: ${details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ')}` : message);
  }
}

/** Parses untrusted input into a spec, or throws SpecError with field paths. */
export function parseSpec(input: unknown): SweepSpec {
  const result = SweepSpecSchema.safeParse(input);
  if (!result.success) {
    throw new SpecError(
      'invalid sweep spec',
      result.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
  return result.data;
}

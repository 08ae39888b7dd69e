/**
 * Which backends a gpu-node runs, from its node config: a YAML or JSON file
 * named by NIGHTSHIFT_NODE_CONFIG (see examples/node-config.yaml).
 *
 *   procedural: true            # the built-in test painter (default on)
 *   exec: { tmpDir, logLines }  # optional settings for the exec backend
 *   generators: [ … ]           # exec generators (GeneratorSchema); any ⇒ backend "exec"
 *   upscale: { model, … }       # the upscale backend; no model ⇒ jobs fail with a clear error
 *   onnx: { models: { NAME: FOLDER }, threads, executionProviders, maxLoadedModels }
 *                               # Stable Diffusion over onnxruntime (diffusers ONNX exports);
 *                               # the built-in nightshift-tiny-sd is always there
 *   schedule: [ "mon-fri 23:00-07:30", "sat,sun all" ]
 *                               # working hours, node local time (schedule.ts); none ⇒ always
 *   idleOnly: true              # take work only while no other program uses the GPU (gpu-probe.ts)
 *   onLeave: finish | requeue   # on leaving, complete the running job or hand it back
 *
 * Relative paths (generator cwd, upscale model, exec tmpDir, onnx model folders) are resolved
 * against the config file's folder, so a config can travel with its scripts.
 * Without NIGHTSHIFT_NODE_CONFIG a node runs the procedural backend only.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { formatIssues } from '@nightshift/common';
import type { Backend } from './backend.js';
import { ExecBackend, GeneratorSchema } from './exec.js';
import { ProceduralBackend } from './procedural.js';
import { UpscaleBackend } from './upscale.js';
import { OnnxBackend } from './onnx.js';
import { ChildGroups } from './child-groups.js';
import { parseFaults, withRenderFaults } from '../faults.js';
import { parseWindow } from '../schedule.js';

const UpscaleSchema = z.strictObject({
  /** Real-ESRGAN-layout ONNX model file. */
  model: z.string().min(1).optional(),
  /** Name recorded in the PNG and advertised (default: file name without .onnx). */
  name: z.string().min(1).max(200).optional(),
  tileSize: z.number().int().min(8).max(4096).default(128),
  overlap: z.number().int().min(0).max(512).default(16),
  threads: z.number().int().min(0).max(256).default(0),
  maxInputPixels: z.number().int().min(1).default(2048 * 2048),
});

const OnnxSchema = z.strictObject({
  /** Model name (a sweep's `model`) → diffusers ONNX export folder. */
  models: z.record(z.string().min(1).max(200), z.string().min(1)).default({}),
  threads: z.number().int().min(0).max(256).default(0),
  /** onnxruntime execution providers in order, e.g. [cuda, cpu] (cuda needs onnxruntime-node's CUDA build). */
  executionProviders: z.array(z.enum(['cpu', 'cuda', 'dml', 'coreml', 'webgpu'])).min(1).default(['cpu']),
  previewMaxSide: z.number().int().min(16).max(2048).default(128),
  /** Least time between preview frames of one render (0: one per step). */
  previewIntervalMs: z.number().int().min(0).max(60_000).default(250),
  /** Model folders kept loaded between jobs; the least recently used one no render holds is released first. */
  maxLoadedModels: z.number().int().min(1).max(64).default(2),
});

/** One window or a list of them; each checked here so a bad one names its field. */
const ScheduleSchema = z
  .union([z.string(), z.array(z.string()).min(1)])
  .transform((v) => (typeof v === 'string' ? [v] : v))
  .superRefine((entries, ctx) => {
    entries.forEach((e, i) => {
      try {
        parseWindow(e);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: [i], message: err instanceof Error ? err.message : String(err) });
      }
    });
  });

export const NodeConfigSchema = z.strictObject({
  procedural: z.boolean().default(true),
  exec: z
    .strictObject({
      tmpDir: z.string().min(1).optional(),
      logLines: z.number().int().min(1).max(10_000).default(300),
      previewMaxSide: z.number().int().min(16).max(2048).default(256),
    })
    .default({ logLines: 300, previewMaxSide: 256 }),
  // Relative cwd is allowed here; loadNodeConfig makes it absolute before GeneratorSchema's check.
  generators: z.array(z.unknown()).default([]),
  upscale: UpscaleSchema.optional(),
  onnx: OnnxSchema.optional(),
  /** Working hours in the node's local time; absent ⇒ always. */
  schedule: ScheduleSchema.optional(),
  /** Take work only while no other program uses the GPU (nvidia-smi). */
  idleOnly: z.boolean().default(false),
  /** Leaving (schedule, busy GPU, pause): complete the running job, or hand it back to the queue. */
  onLeave: z.enum(['finish', 'requeue']).default('finish'),
});

export type NodeConfig = Omit<z.output<typeof NodeConfigSchema>, 'generators'> & { generators: z.output<typeof GeneratorSchema>[] };

/**
 * Validates a parsed node config. `baseDir` anchors relative paths (the
 * config file's folder); errors name the offending field.
 */
export function parseNodeConfig(input: unknown, baseDir = process.cwd()): NodeConfig {
  const top = NodeConfigSchema.safeParse(input ?? {});
  if (!top.success) throw new Error(`invalid node config: ${formatIssues(top.error.issues)}`);
  const abs = (p: string) => path.resolve(baseDir, p);
  const generators = top.data.generators.map((g, i) => {
    const withCwd = typeof g === 'object' && g !== null && typeof (g as { cwd?: unknown }).cwd === 'string' ? { ...g, cwd: abs((g as { cwd: string }).cwd) } : g;
    const r = GeneratorSchema.safeParse(withCwd);
    if (!r.success) throw new Error(`invalid node config: ${formatIssues(r.error.issues, `generators.${i}`)}`);
    return r.data;
  });
  const names = generators.map((g) => g.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new Error(`invalid node config: generators: "${dup}" is defined twice`);
  const exec = { ...top.data.exec, ...(top.data.exec.tmpDir ? { tmpDir: abs(top.data.exec.tmpDir) } : {}) };
  const upscale = top.data.upscale && { ...top.data.upscale, ...(top.data.upscale.model ? { model: abs(top.data.upscale.model) } : {}) };
  const onnx = top.data.onnx && { ...top.data.onnx, models: Object.fromEntries(Object.entries(top.data.onnx.models).map(([name, dir]) => [name, abs(dir)])) };
  const { schedule, idleOnly, onLeave } = top.data;
  return { procedural: top.data.procedural, exec, generators, ...(upscale ? { upscale } : {}), ...(onnx ? { onnx } : {}), ...(schedule ? { schedule } : {}), idleOnly, onLeave };
}

/** Reads and validates a node config file (.json, else YAML). */
export function loadNodeConfig(file: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read node config ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new Error(`node config ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  try {
    return parseNodeConfig(doc, path.dirname(path.resolve(file)));
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** The backends a config describes, keyed by the name jobs use (job.backend). `dataDir`: where built-in models are written. */
export function buildBackends(config: NodeConfig, childGroups?: ChildGroups, dataDir = path.resolve('.data')): Map<string, Backend> {
  const out = new Map<string, Backend>();
  const add = (b: Backend) => out.set(b.name, b);
  if (config.procedural) add(new ProceduralBackend());
  if (config.generators.length > 0) {
    add(
      new ExecBackend(config.generators, {
        logLines: config.exec.logLines,
        previewMaxSide: config.exec.previewMaxSide,
        ...(config.exec.tmpDir ? { tmpDir: config.exec.tmpDir } : {}),
        ...(childGroups ? { childGroups } : {}),
      }),
    );
  }
  if (config.upscale) {
    const u = config.upscale;
    add(
      new UpscaleBackend({
        ...(u.model ? { modelPath: u.model } : {}),
        ...(u.name ? { modelName: u.name } : {}),
        tileSize: u.tileSize,
        overlap: u.overlap,
        threads: u.threads,
        maxInputPixels: u.maxInputPixels,
      }),
    );
  }
  if (config.onnx) {
    const o = config.onnx;
    add(new OnnxBackend({ models: o.models, dataDir, threads: o.threads, executionProviders: o.executionProviders, previewMaxSide: o.previewMaxSide, previewIntervalMs: o.previewIntervalMs, maxLoadedModels: o.maxLoadedModels }));
  }
  if (out.size === 0) throw new Error('node config enables no backend (procedural is off, no generators, no upscale, no onnx)');
  return out;
}

/** Backends from NIGHTSHIFT_NODE_CONFIG, or the procedural backend alone when it is unset. */
export function backendsFromEnv(env: NodeJS.ProcessEnv = process.env, config: NodeConfig = nodeConfigFromEnv(env)): Map<string, Backend> {
  // Injected faults (tests only) wrap whatever backends the config names.
  return withRenderFaults(configuredBackends(env, config), parseFaults(env.NIGHTSHIFT_FAULTS));
}

/** The node config NIGHTSHIFT_NODE_CONFIG names, or the defaults when it is unset. */
export function nodeConfigFromEnv(env: NodeJS.ProcessEnv = process.env): NodeConfig {
  const file = env.NIGHTSHIFT_NODE_CONFIG;
  return file ? loadNodeConfig(file) : parseNodeConfig({});
}

function configuredBackends(env: NodeJS.ProcessEnv, config: NodeConfig): Map<string, Backend> {
  const dataDir = path.resolve(env.NIGHTSHIFT_DATA_DIR ?? '.data');
  if (!config.generators.length) return buildBackends(config, undefined, dataDir);
  // Generator groups are tracked in the node's data folder; a crash's leftovers are stopped now.
  const groups = new ChildGroups(path.join(dataDir, 'generator-groups'));
  const reaped = groups.reapLeftovers();
  if (reaped.length) console.warn(JSON.stringify({ level: 40, msg: 'stopped generators left running by a previous run of this node', pids: reaped }));
  return buildBackends(config, groups, dataDir);
}

/**
 * The `exec` backend: runs the user's own generator script (a diffusers or
 * CLIP-guided-diffusion script, a ComfyUI CLI run, …) once per job.
 *
 * - The command is an argv template; placeholders are substituted inside each
 *   argument and the result is spawned directly, never through a shell, so a
 *   prompt such as `"; rm -rf ~` or `$(…)` is one argument and nothing else.
 * - Progress protocol on stdout, one JSON object per line:
 *   `{"step":3,"total":50}`, `{"preview":"/path.png"}`, `{"output":"/path.png"}`.
 *   Every other line, stdout or stderr, is the job's log; the last few hundred
 *   lines travel with a failure.
 * - The generator runs in its own process group (detached), so cancellation
 *   and timeouts reach everything it started: SIGTERM to the group, SIGKILL
 *   after a grace period. Leftover group members are cleaned up the same way
 *   after a normal exit too.
 * - Each job gets a private temp folder ({output}, {preview}, {params} live
 *   there), removed afterwards.
 */
import { spawn } from 'node:child_process';
import type { ChildGroups } from './child-groups.js';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { formatIssues, hasPngSignature, pidExists, sleep } from '@nightshift/common';
import { RenderFailure, type Backend, type RenderProgress, type RenderRequest, type RenderResult } from './backend.js';

/** Placeholders a command argument may contain, as `{name}`. */
export const PLACEHOLDERS = ['prompt', 'seed', 'width', 'height', 'steps', 'guidance', 'output', 'preview', 'params', 'model'] as const;
type Placeholder = (typeof PLACEHOLDERS)[number];
const PLACEHOLDER_RE = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Output lines that mean the GPU ran out of memory (PyTorch's messages and exception name). */
export const OOM_PATTERN = /CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED/;

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

export interface ExecBackendOptions {
  /** Where per-job temp folders go (default: the OS temp folder). */
  tmpDir?: string;
  /** Log lines kept per job. */
  logLines?: number;
  /** Longest side of previews passed on (they are re-encoded as WebP). */
  previewMaxSide?: number;
  /** Minimum gap between preview conversions (the newest announced file wins). */
  previewIntervalMs?: number;
  /** Environment the generators start from (default: this process's, minus NIGHTSHIFT_* keys). */
  baseEnv?: NodeJS.ProcessEnv;
  /** Records running generator groups so a restarted node can stop ones a crash left behind. */
  childGroups?: ChildGroups;
}

/** Substitutes `{name}` placeholders in one argument; values are inserted once, never re-scanned. */
export function substitute(arg: string, values: Record<Placeholder, string>): string {
  return arg.replace(PLACEHOLDER_RE, (whole, name: string) => (Object.hasOwn(values, name) ? values[name as Placeholder] : whole));
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
function generatorEnv(base: NodeJS.ProcessEnv, gen: GeneratorConfig, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) if (!k.startsWith('NIGHTSHIFT_') && v !== undefined) env[k] = v;
  // Python block-buffers a piped stdout; progress lines must arrive as they happen.
  env.PYTHONUNBUFFERED = '1';
  return { ...env, ...gen.env, ...extra };
}

/** Bounded ring of log lines. */
class LogTail {
  private readonly lines: string[] = [];
  constructor(private readonly max: number) {}
  push(line: string): void {
    this.lines.push(line.length > 2_000 ? `${line.slice(0, 2_000)}…` : line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  text(): string {
    return this.lines.join('\n');
  }
}

/**
 * Splits a text stream into lines. A carriage return starts the line over
 * (progress bars redraw with \r), and a line with no newline for 64 KiB is
 * cut, so a misbehaving generator cannot grow memory without bound.
 */
class LineSplitter {
  private partial = '';
  constructor(private readonly onLine: (line: string) => void) {}
  write(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) this.emit(p);
    if (this.partial.length > 65_536) {
      this.emit(this.partial);
      this.partial = '';
    }
  }
  end(): void {
    if (this.partial) this.emit(this.partial);
    this.partial = '';
  }
  private emit(raw: string): void {
    const segs = raw.replace(/\r$/, '').split('\r');
    const line = segs.filter((s) => s.length > 0).pop() ?? '';
    if (line.trim()) this.onLine(line);
  }
}

type ProtocolMessage = { step?: number; total?: number; preview?: string; output?: string };

/** A protocol line, or undefined when the line is log. */
export function parseProtocolLine(line: string): ProtocolMessage | undefined {
  const t = line.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const msg: ProtocolMessage = {};
  if (typeof o.step === 'number' && Number.isFinite(o.step)) msg.step = o.step;
  if (typeof o.total === 'number' && Number.isFinite(o.total) && o.total > 0) msg.total = o.total;
  if (typeof o.preview === 'string' && o.preview) msg.preview = o.preview;
  if (typeof o.output === 'string' && o.output) msg.output = o.output;
  return Object.keys(msg).length > 0 ? msg : undefined;
}

interface RunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  outputPath: string | undefined;
  oom: boolean;
  log: string;
}

export class ExecBackend implements Backend {
  readonly name = 'exec';
  readonly models: readonly string[];
  private readonly generators: GeneratorConfig[];
  private readonly active = new Set<() => Promise<void>>();
  private closed = false;

  constructor(
    generators: readonly GeneratorInput[],
    private readonly opts: ExecBackendOptions = {},
  ) {
    this.generators = generators.map((g, i) => {
      const r = GeneratorSchema.safeParse(g);
      if (!r.success) throw new Error(`exec generator ${i}: ${formatIssues(r.error.issues)}`);
      return r.data;
    });
    if (this.generators.length === 0) throw new Error('exec backend needs at least one generator');
    const names = new Set<string>();
    for (const g of this.generators) {
      if (names.has(g.name)) throw new Error(`exec generator "${g.name}" is defined twice`);
      names.add(g.name);
    }
    this.models = [...new Set(this.generators.flatMap((g) => [g.name, ...g.models]))];
  }

  /**
   * Which generator renders a job's model: "default" (or empty) → the first
   * generator; a generator's name → that one with its first model; a model a
   * generator lists → that generator with that model.
   */
  resolve(model: string): { gen: GeneratorConfig; model: string } {
    const first = this.generators[0]!;
    if (!model || model === 'default') return { gen: first, model: first.models[0] ?? first.name };
    const byName = this.generators.find((g) => g.name === model);
    if (byName) return { gen: byName, model: byName.models[0] ?? byName.name };
    const byModel = this.generators.find((g) => g.models.includes(model));
    if (byModel) return { gen: byModel, model };
    throw new RenderFailure(`no exec generator on this node provides model "${model}" (available: ${this.models.join(', ')})`);
  }

  async render(req: RenderRequest, onProgress: (p: RenderProgress) => void, signal: AbortSignal): Promise<RenderResult> {
    if (req.kind !== 'render') throw new RenderFailure(`the exec backend renders images; ${req.kind} jobs go to the ${req.kind} backend`);
    if (this.closed) throw new RenderFailure('exec backend is shutting down');
    const { gen, model } = this.resolve(req.model);
    signal.throwIfAborted();
    const dir = await mkdtemp(path.join(this.opts.tmpDir ?? os.tmpdir(), 'nightshift-exec-'));
    try {
      const files = { output: path.join(dir, 'output.png'), preview: path.join(dir, 'preview.png'), params: path.join(dir, 'params.json') };
      const { width, height, steps, guidance } = req.params;
      const values: Record<Placeholder, string> = {
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
      };
      if (gen.paramsFile || gen.command.some((a) => a.includes('{params}'))) {
        const doc = { jobId: req.jobId, renderKey: req.renderKey, prompt: req.prompt, seed: req.seed, model, output: files.output, preview: files.preview, params: req.params };
        await writeFile(files.params, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
      }
      const argv = gen.command.map((a) => substitute(a, values));
      // The OS cannot pass a NUL inside an argument; say so instead of a TypeError from spawn.
      if (argv.some((a) => a.includes('\0'))) throw new RenderFailure('the prompt or a parameter contains a NUL character, which cannot be passed to a program');
      const cwd = gen.cwd ?? dir;
      const env = generatorEnv(this.opts.baseEnv ?? process.env, gen, { NIGHTSHIFT_JOB_ID: req.jobId, NIGHTSHIFT_JOB_DIR: dir });
      const outcome = await this.run(gen, argv, cwd, env, req.params.steps, onProgress, signal);

      const what = `generator "${gen.name}"`;
      if (outcome.aborted) throw signal.reason ?? new Error('cancelled');
      if (outcome.timedOut) throw new RenderFailure(`${what} timed out after ${gen.timeoutMs} ms and was stopped`, outcome.log, outcome.oom);
      if (outcome.code !== 0) {
        const how = outcome.code !== null ? `exited with code ${outcome.code}` : `was killed by ${outcome.signal ?? 'a signal'}`;
        const oomNote = outcome.oom ? ' (CUDA out of memory)' : '';
        throw new RenderFailure(`${what} ${how}${oomNote}`, outcome.log, outcome.oom);
      }
      const outputPath = outcome.outputPath ? path.resolve(cwd, outcome.outputPath) : files.output;
      let bytes: Buffer;
      try {
        bytes = await readFile(outputPath);
      } catch {
        throw new RenderFailure(`${what} exited 0 but wrote no output image (expected ${outputPath})`, outcome.log);
      }
      return { png: await toPng(bytes, what, outcome.log), model };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private run(
    gen: GeneratorConfig,
    argv: string[],
    cwd: string,
    env: NodeJS.ProcessEnv,
    defaultTotal: number,
    onProgress: (p: RenderProgress) => void,
    signal: AbortSignal,
  ): Promise<RunOutcome> {
    return new Promise<RunOutcome>((resolve, reject) => {
      const log = new LogTail(this.opts.logLines ?? 300);
      let oom = false;
      let outputPath: string | undefined;
      let timedOut = false;
      let aborted = false;
      let step = 0;
      let total = defaultTotal;
      const previews = new PreviewPump(cwd, this.opts.previewMaxSide ?? 256, this.opts.previewIntervalMs ?? 200, (preview) =>
        onProgress({ step, total, preview }),
      );

      const child = spawn(argv[0]!, argv.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      const pid = child.pid;
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('exit', (code, sig) => res({ code, signal: sig })));
      child.once('error', (err) => {
        // spawn failures (ENOENT, EACCES) come here, with no process to wait for.
        if (pid === undefined) reject(new RenderFailure(`could not start generator "${gen.name}" (${argv[0]}): ${err.message}`));
      });
      if (pid === undefined) return;
      this.opts.childGroups?.record(pid);

      const killGroup = (sig: NodeJS.Signals) => {
        try {
          process.kill(-pid, sig);
        } catch {
          // ESRCH: the group is already gone.
        }
      };
      const groupAlive = () => pidExists(-pid);
      let stopping: Promise<void> | undefined;
      /** SIGTERM the group, wait for it to go (up to the grace period), then SIGKILL whatever is left. */
      const stopGroup = () =>
        (stopping ??= (async () => {
          killGroup('SIGTERM');
          const deadline = Date.now() + gen.killGraceMs;
          while (groupAlive() && Date.now() < deadline) await sleep(25);
          if (groupAlive()) killGroup('SIGKILL');
        })());
      const stop = async () => {
        await stopGroup();
        await exited;
      };
      this.active.add(stop);

      const onAbort = () => {
        aborted = true;
        void stopGroup();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort(); // aborted while the job folder was being prepared
      const timer = setTimeout(() => {
        timedOut = true;
        log.push(`[nightshift] timeout after ${gen.timeoutMs} ms: stopping the generator's process group`);
        void stopGroup();
      }, gen.timeoutMs);

      const onLog = (line: string) => {
        if (OOM_PATTERN.test(line)) oom = true;
        log.push(line);
      };
      const out = new LineSplitter((line) => {
        const msg = parseProtocolLine(line);
        if (!msg) return onLog(line);
        if (msg.total !== undefined) total = msg.total;
        if (msg.step !== undefined) {
          step = msg.step;
          onProgress({ step, total });
        }
        if (msg.preview) previews.offer(msg.preview);
        if (msg.output) outputPath = msg.output;
      });
      const err = new LineSplitter(onLog);
      child.stdout.setEncoding('utf8').on('data', (c: string) => out.write(c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => err.write(c));
      const streamsDone = Promise.all([new Promise((r) => child.stdout.once('close', r)), new Promise((r) => child.stderr.once('close', r))]);

      void (async () => {
        const { code, signal: sig } = await exited;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        // Members that outlive the generator (a forgotten worker, a pipe holder) are stopped too.
        if (groupAlive()) {
          if (!stopping) log.push('[nightshift] the generator left processes running in its group; stopping them');
          await stopGroup();
        }
        // The pipes close once every holder has gone; a detached grandchild
        // that kept them open (it left the group) must not hold up the job.
        await Promise.race([streamsDone, sleep(1_000)]);
        out.end();
        err.end();
        await previews.drain();
        this.opts.childGroups?.forget(pid);
        this.active.delete(stop);
        resolve({ code, signal: sig, timedOut, aborted, outputPath, oom, log: log.text() });
      })();
    });
  }

  /** Stops every running generator (node shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.active].map((stop) => stop()));
  }
}

/**
 * Turns announced preview files into small WebPs for the worker. One
 * conversion at a time, at most one per interval; while one runs, only the
 * newest announced file is remembered (newest wins, older ones are skipped).
 */
class PreviewPump {
  private pending: string | undefined;
  private running: Promise<void> | undefined;
  private last = 0;
  private stopped = false;

  constructor(
    private readonly cwd: string,
    private readonly maxSide: number,
    private readonly intervalMs: number,
    private readonly emit: (preview: Buffer) => void,
  ) {}

  offer(file: string): void {
    if (this.stopped) return;
    this.pending = path.resolve(this.cwd, file);
    this.running ??= this.pump();
  }

  private async pump(): Promise<void> {
    try {
      while (this.pending && !this.stopped) {
        const wait = this.last + this.intervalMs - Date.now();
        if (wait > 0) await sleep(wait);
        const file = this.pending;
        this.pending = undefined;
        if (!file) break;
        this.last = Date.now();
        try {
          const webp = await sharp(await readFile(file))
            .resize(this.maxSide, this.maxSide, { fit: 'inside', withoutEnlargement: true })
            .webp({ quality: 60, effort: 1 })
            .toBuffer();
          this.emit(webp);
        } catch {
          // A half-written or vanished preview is skipped; the next one will do.
        }
      }
    } finally {
      this.running = undefined;
    }
  }

  /** Stops taking previews and waits for the conversion in flight, if any, to be passed on (the job folder is about to go). */
  async drain(): Promise<void> {
    this.stopped = true;
    this.pending = undefined;
    await this.running;
  }
}

const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

/** The generator's output as PNG bytes (JPEG/WebP outputs are converted). */
async function toPng(bytes: Buffer, what: string, log: string): Promise<Buffer> {
  const isPng = hasPngSignature(bytes);
  try {
    if (isPng) {
      // A truncated file (a generator killed mid-write) is caught here, with the log, rather than later in the worker.
      if (!bytes.subarray(bytes.length - 12).equals(PNG_IEND)) throw new Error('PNG is truncated (no IEND chunk at the end)');
      await sharp(bytes).metadata();
      return bytes;
    }
    return await sharp(bytes).png().toBuffer();
  } catch (err) {
    throw new RenderFailure(`${what} wrote an output that is not a readable image: ${err instanceof Error ? err.message : String(err)}`, log);
  }
}

/**
 * The `exec` backend: runs the user's own generator script (a diffusers or
 * CLIP-guided-diffusion script, a ComfyUI CLI run, …) once per job.
 *
 * - The command is an argv template (exec-generator.ts); placeholders are
 *   substituted inside each argument and the result is spawned directly,
 *   never through a shell, so a prompt such as `"; rm -rf ~` or `$(…)` is one
 *   argument and nothing else.
 * - Progress protocol on stdout, one JSON object per line (exec-protocol.ts):
 *   `{"step":3,"total":50}`, `{"preview":"/path.png"}`, `{"output":"/path.png"}`.
 *   Every other line, stdout or stderr, is the job's log; the last few hundred
 *   lines travel with a failure.
 * - The generator runs in its own process group (exec-spawn.ts), so
 *   cancellation and timeouts reach everything it started: SIGTERM to the
 *   group, SIGKILL after a grace period. Leftover group members are cleaned
 *   up the same way after a normal exit too.
 * - Each job gets a private temp folder ({output}, {preview}, {params} live
 *   there), removed afterwards (exec-outputs.ts).
 */
import { formatIssues } from '@nightshift/common';
import type { ChildGroups } from './child-groups.js';
import { RenderFailure, type Backend, type RenderProgress, type RenderRequest, type RenderResult } from './backend.js';
import { GeneratorSchema, generatorEnv, placeholderValues, substitute, takesModelPath, wantsParamsFile, type GeneratorConfig, type GeneratorInput } from './exec-generator.js';
import { generatorModelPath } from './model-source.js';
import { handOver, resolveRunAs, type RunAs } from './run-as.js';
import { escaped, readOutput, withJobFolder, writeParamsFile, type JobFolder } from './exec-outputs.js';
import { PreviewPump } from './exec-previews.js';
import { ProtocolReader } from './exec-protocol.js';
import { runProcessGroup, type GroupExit } from './exec-spawn.js';

export { GeneratorSchema, PLACEHOLDERS, substitute, vramFromTable, type GeneratorConfig, type GeneratorInput } from './exec-generator.js';
export { OOM_PATTERN, parseProtocolLine } from './exec-protocol.js';

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

interface RunOutcome extends GroupExit {
  /** The output path the generator announced, if any. */
  outputPath: string | undefined;
  /** A preview it announced outside its job folder. */
  previewEscaped: string | undefined;
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
   * generator lists → that generator with that model; any other registry
   * model (`pulled`) → the first generator that takes `{model_path}`.
   */
  resolve(model: string, pulled = false): { gen: GeneratorConfig; model: string } {
    const first = this.generators[0]!;
    if (!model || model === 'default') return { gen: first, model: first.models[0] ?? first.name };
    const byName = this.generators.find((g) => g.name === model);
    if (byName) return { gen: byName, model: byName.models[0] ?? byName.name };
    const byModel = this.generators.find((g) => g.models.includes(model));
    if (byModel) return { gen: byModel, model };
    const taker = pulled ? this.generators.find(takesModelPath) : undefined;
    if (taker) return { gen: taker, model };
    throw new RenderFailure(`no exec generator on this node provides model "${model}" (available: ${this.models.join(', ')})`);
  }

  async render(req: RenderRequest, onProgress: (p: RenderProgress) => void, signal: AbortSignal): Promise<RenderResult> {
    if (req.kind !== 'render') throw new RenderFailure(`the exec backend renders images; ${req.kind} jobs go to the ${req.kind} backend`);
    if (this.closed) throw new RenderFailure('exec backend is shutting down');
    const { gen, model } = this.resolve(req.model, req.modelPath !== undefined);
    if (takesModelPath(gen) && !req.modelPath) throw new RenderFailure(`generator "${gen.name}" takes {model_path}, but the job's model "${req.model}" is not a registry model (add it with nightshift models add)`);
    const runAs = resolveRunAs(gen.user, `generator "${gen.name}"`);
    signal.throwIfAborted();
    return withJobFolder(this.opts.tmpDir, async (folder) => {
      if (wantsParamsFile(gen)) await writeParamsFile(folder, req, model);
      await handOver([folder.dir, folder.params], runAs);
      const values = placeholderValues(req, model, folder, req.modelPath ? await generatorModelPath(req.modelPath) : '');
      const argv = gen.command.map((a) => substitute(a, values));
      // The OS cannot pass a NUL inside an argument; say so instead of a TypeError from spawn.
      if (argv.some((a) => a.includes('\0'))) throw new RenderFailure('the prompt or a parameter contains a NUL character, which cannot be passed to a program');
      const cwd = gen.cwd ?? folder.dir;
      const outcome = await this.run(gen, argv, cwd, folder, req, onProgress, signal, runAs);

      const what = `generator "${gen.name}"`;
      if (outcome.aborted) throw signal.reason ?? new Error('cancelled');
      if (outcome.previewEscaped) throw escaped(what, 'preview', outcome.previewEscaped, folder);
      if (outcome.timedOut) throw new RenderFailure(`${what} timed out after ${gen.timeoutMs} ms and was stopped`, outcome.log, outcome.oom);
      if (outcome.code !== 0) {
        const how = outcome.code !== null ? `exited with code ${outcome.code}` : `was killed by ${outcome.signal ?? 'a signal'}`;
        const oomNote = outcome.oom ? ' (CUDA out of memory)' : '';
        throw new RenderFailure(`${what} ${how}${oomNote}`, outcome.log, outcome.oom);
      }
      return { png: await readOutput(outcome.outputPath, cwd, folder, what, outcome.log), model };
    });
  }

  /** Runs the generator to the end, passing progress and previews on as they come. */
  private async run(
    gen: GeneratorConfig,
    argv: string[],
    cwd: string,
    folder: JobFolder,
    req: RenderRequest,
    onProgress: (p: RenderProgress) => void,
    signal: AbortSignal,
    runAs: RunAs | undefined,
  ): Promise<RunOutcome> {
    const previews = new PreviewPump(cwd, folder, this.opts.previewMaxSide ?? 256, this.opts.previewIntervalMs ?? 200, (preview) =>
      onProgress({ step: reader.step, total: reader.total, preview }),
    );
    const reader = new ProtocolReader(req.params.steps, this.opts.logLines ?? 300, { progress: onProgress, preview: (file) => previews.offer(file) });
    const exit = await runProcessGroup(argv, {
      label: `generator "${gen.name}"`,
      cwd,
      uid: runAs?.uid,
      gid: runAs?.gid,
      env: generatorEnv(this.opts.baseEnv ?? process.env, gen, { NIGHTSHIFT_JOB_ID: req.jobId, NIGHTSHIFT_JOB_DIR: folder.dir }),
      timeoutMs: gen.timeoutMs,
      killGraceMs: gen.killGraceMs,
      signal,
      onStdout: (chunk) => reader.stdout(chunk),
      onStderr: (chunk) => reader.stderr(chunk),
      note: (line) => reader.note(line),
      childGroups: this.opts.childGroups,
      running: this.active,
    });
    reader.end();
    await previews.drain();
    return { ...exit, outputPath: reader.outputPath, previewEscaped: previews.escaped, oom: reader.oom, log: reader.logText() };
  }

  /** Stops every running generator (node shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.active].map((stop) => stop()));
  }
}

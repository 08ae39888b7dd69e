/**
 * Runs leased jobs: a small local queue (the coordinator prefetches into it)
 * drained by one worker per render slot. Each job is rendered, stamped with
 * its A1111 parameters, thumbnailed and uploaded before it is reported done;
 * uploads retry until storage is back, so a job is never reported without
 * its image.
 */
import type { JobAssignment } from '@nightshift/proto';
import { addPngTextChunk, assertRenderKey, formatA1111Parameters, imageKey, imageObjectMeta, renderKeyOfImageRef, thumbKey, upscaledKey, type Logger, type Storage } from '@nightshift/common';
import { RenderFailure, type Backend, type JobKind, type RenderParams, type RenderResult } from './backends/backend.js';
import { makeThumbnail } from './thumbnail.js';
import { ModelUnavailableError, type NodeModels, type PulledModel } from './model-pull.js';
import { batchLimit, batchMembers, canBatch, takeSiblings, type BatchMember } from './batch-render.js';
import { withRetry } from '@nightshift/common';
import { addProvenanceChunk } from '@nightshift/common';
import { PowerMeter, type JobCostReport, type JobMeter } from './power-meter.js';
import { jobProvenance, localSoftware, type NodeSoftware } from './provenance.js';

/**
 * The largest preview sent to the coordinator, which ignores bigger ones
 * (coordinator previews.ts keeps the same bound): a bigger one is dropped
 * here, the progress still goes.
 */
export const MAX_PREVIEW_BYTES = 256 * 1024;

export type Report =
  | { case: 'progress'; value: { jobId: string; step: number; total: number; previewWebp: Uint8Array } }
  | { case: 'completed'; value: { jobId: string; renderKey: string; imageKey: string; thumbKey: string; renderMs: number; skipped: boolean; imageBytes: bigint; model?: string; cost?: JobCostReport } }
  | { case: 'failed'; value: { jobId: string; error: string; outOfMemory: boolean; logTail: string; modelUnavailable?: boolean } };

export interface WorkerOptions {
  nodeId: string;
  slots: number;
  backends: Map<string, Backend>;
  storage: Pick<Storage, 'put' | 'exists' | 'get'>;
  report: (r: Report) => void;
  log: Logger;
  /** Minimum gap between previews sent for one job. */
  previewIntervalMs?: number;
  /** The registry model cache (model-pull.ts): jobs with a model_hash get their model's folder from it. */
  models?: NodeModels;
  /** Meters each render's share of the GPU's busy time and energy (power-meter.ts); without one, render slots still share the busy time, energy is not measured. */
  meter?: JobMeter;
  /** The node's software for each PNG's provenance chunk; default: this process's (provenance.ts). */
  software?: () => Promise<NodeSoftware>;
  /** The node's VRAM (as advertised): bounds how many jobs of a params.batch render together (batch-render.ts). */
  vramMb?: number;
}

interface Held {
  job: JobAssignment;
  abort: AbortController;
  running: boolean;
  /** The render is done; only its upload is left (a leave in requeue mode lets that finish). */
  rendered?: boolean;
  /** Started at assignment, while the job waits in the prefetch queue: is its output already stored? */
  stored?: Promise<boolean>;
  /** The job's registry model, held (never evicted) until the job is forgotten. */
  model?: PulledModel;
}

export class Worker {
  private readonly queue: Held[] = [];
  private readonly held = new Map<string, Held>();
  /** Every idle render slot's wake-up: each must hear of a new job (or the stop), not only the last to sleep. */
  private readonly sleepers = new Set<() => void>();
  private stopped = false;
  /** Left the farm (schedule, busy GPU, pause): takes no job until rejoin(). */
  private away = false;
  private readonly loops: Promise<void>[] = [];
  /** Store-and-report steps still running behind the renders. */
  private readonly uploads = new Set<Promise<void>>();
  private readonly maxPendingUploads: number;
  /** Time the render slots spent waiting for work, for the idle-fraction benchmark. */
  idleMs = 0;

  /** Asked at once, so the first job does not wait for nvidia-smi. */
  private readonly software: Promise<NodeSoftware>;
  /** One for the device: the render slots' (and batches') spans share its busy time. */
  private readonly meter: JobMeter;

  constructor(private readonly opts: WorkerOptions) {
    this.maxPendingUploads = 2 * Math.max(1, opts.slots);
    this.software = (opts.software ?? localSoftware)();
    this.meter = opts.meter ?? new PowerMeter();
  }

  start(): void {
    for (let i = 0; i < this.opts.slots; i++) this.loops.push(this.loop());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const h of this.held.values()) h.abort.abort();
    this.wake();
    await Promise.all(this.loops);
    await Promise.allSettled([...this.uploads]);
  }

  heldJobIds(): string[] {
    return [...this.held.keys()];
  }

  /** Queues a job; false when the node is away and takes none (the caller hands it back). */
  assign(job: JobAssignment): boolean {
    if (this.held.has(job.jobId)) return true;
    if (this.away) return false;
    const h: Held = { job, abort: new AbortController(), running: false };
    h.stored = this.alreadyStored(job, h.abort.signal);
    h.stored.catch(() => {}); // awaited (and its error handled) when the job runs
    this.held.set(job.jobId, h);
    this.queue.push(h);
    this.wake();
    return true;
  }

  /**
   * Leaves the farm: prefetched jobs are dropped, and in `requeue` mode so
   * are renders in progress (their uploads, once rendered, still finish);
   * in `finish` mode running jobs are completed. Returns the jobs no longer
   * held, for the coordinator to requeue.
   */
  leave(mode: 'finish' | 'requeue'): string[] {
    this.away = true;
    const released = [...this.held.values()].filter((h) => !h.running || (mode === 'requeue' && !h.rendered));
    for (const h of released) this.cancel(h.job.jobId);
    return released.map((h) => h.job.jobId);
  }

  /** Takes jobs again after leave(). */
  rejoin(): void {
    this.away = false;
  }

  /** Drops a job: unqueued if waiting, aborted if rendering. */
  cancel(jobId: string): void {
    const h = this.held.get(jobId);
    if (!h) return;
    h.abort.abort();
    const i = this.queue.indexOf(h);
    if (i >= 0) this.queue.splice(i, 1);
    this.held.delete(jobId);
  }

  private wake(): void {
    for (const wake of this.sleepers) wake();
    this.sleepers.clear();
  }

  private async next(): Promise<Held | undefined> {
    const started = performance.now();
    while (!this.stopped && this.queue.length === 0) await new Promise<void>((r) => this.sleepers.add(r));
    this.idleMs += performance.now() - started;
    return this.queue.shift();
  }

  private async loop(): Promise<void> {
    for (;;) {
      const h = await this.next();
      if (!h) return;
      // params.batch: waiting siblings (same prompt and params, other seeds) render with it in one call (batch-render.ts).
      const backend = this.opts.backends.get(h.job.backend);
      const group = [h, ...takeSiblings(this.queue, h, batchLimit(h.job, backend, this.opts.vramMb))];
      const members = group.length > 1 && canBatch(backend) ? batchMembers(backend, group.length, this.meter) : [];
      await Promise.all(group.map((g, i) => this.runHeld(g, members[i])));
      // Backpressure: while storage is slow or down, stop rendering more than we can hold.
      while (this.uploads.size >= Math.max(this.maxPendingUploads, 2 * group.length)) await Promise.race(this.uploads);
    }
  }

  /** Renders one job (alone, or as a member of a batch), then stores it behind the next render. */
  private async runHeld(h: Held, member: BatchMember | undefined): Promise<void> {
    h.running = true;
    let finishing: Promise<void> | undefined;
    try {
      finishing = (await this.run(h, member))?.stored;
    } catch (err) {
      this.failed(h, err);
    } finally {
      member?.withdraw();
    }
    if (!finishing) {
      this.forget(h);
      return;
    }
    // The upload runs behind the next render, so the GPU does not wait for S3.
    const tracked: Promise<void> = finishing
      .catch((err: unknown) => this.failed(h, err))
      .finally(() => {
        this.uploads.delete(tracked);
        this.forget(h);
      });
    this.uploads.add(tracked);
  }

  /** Drops a finished job, unless its id was given out again meanwhile (released, then leased back). */
  private forget(h: Held): void {
    h.model?.release();
    if (this.held.get(h.job.jobId) === h) this.held.delete(h.job.jobId);
  }

  /** Idempotent outputs: true when image (and thumbnail) exist, so the job needs no render. */
  private async alreadyStored(job: JobAssignment, signal: AbortSignal): Promise<boolean> {
    const keys = outputKeys(job);
    // Storage may be briefly away; asking again beats failing the job.
    const exists = (key: string) => withRetry(() => this.opts.storage.exists(key), { signal, attempts: 30, maxMs: 3_000 });
    return (await exists(keys.image)) && (!keys.thumb || (await exists(keys.thumb)));
  }

  private failed(h: Held, err: unknown): void {
    if (h.abort.signal.aborted) return;
    const message = err instanceof Error ? err.message : String(err);
    const failure = err instanceof RenderFailure ? err : undefined;
    const outOfMemory = failure?.outOfMemory ?? /out of memory/i.test(message);
    const modelUnavailable = err instanceof ModelUnavailableError;
    this.opts.log.warn({ job: h.job.jobId, err: message, outOfMemory, modelUnavailable }, 'render failed');
    this.opts.report({ case: 'failed', value: { jobId: h.job.jobId, error: message, outOfMemory, logTail: failure?.logTail ?? '', ...(modelUnavailable ? { modelUnavailable } : {}) } });
  }

  /**
   * Renders a job; returns the pending store-and-report step (undefined when
   * nothing is left to do), boxed so that awaiting the render does not await it.
   */
  private async run(h: Held, member?: BatchMember): Promise<{ stored: Promise<void> } | undefined> {
    const { job } = h;
    const signal = h.abort.signal;
    const backend = this.opts.backends.get(job.backend);
    if (!backend) throw new Error(`backend ${job.backend} is not available on this node`);
    const kind = jobKind(job);
    const keys = outputKeys(job);

    // Idempotent outputs: an image already in storage is not rendered again.
    // Storage may be briefly away; asking again beats failing the job.
    if (await (h.stored ?? this.alreadyStored(job, signal))) {
      this.opts.report({ case: 'completed', value: { jobId: job.jobId, renderKey: job.renderKey, imageKey: keys.image, thumbKey: keys.thumb, renderMs: 0, skipped: true, imageBytes: 0n } });
      return;
    }

    if (job.modelHash) h.model = await this.pullModel(job, signal);
    const params = JSON.parse(job.paramsJson) as RenderParams;
    const started = performance.now();
    // A batch member's call is timed and metered once for the batch (batch-render.ts), not here.
    const span = member ? undefined : this.meter.begin();
    let lastPreview = 0;
    let warnedPreview = false;
    const interval = this.opts.previewIntervalMs ?? 250;
    const result = await (member?.render ?? backend.render.bind(backend))(
      {
        jobId: job.jobId,
        renderKey: job.renderKey,
        kind,
        attempt: job.attempt,
        prompt: job.prompt,
        seed: Number(job.seed),
        params,
        model: job.model,
        ...(h.model ? { modelPath: h.model.path } : {}),
        ...(job.sourceKey ? { loadInput: () => this.opts.storage.get(job.sourceKey) } : {}),
        loadImage: (ref: string) => this.opts.storage.get(storedImageKey(ref)),
      },
      (p) => {
        const now = performance.now();
        const oversized = !!p.preview && p.preview.length > MAX_PREVIEW_BYTES;
        if (oversized && !warnedPreview) {
          warnedPreview = true;
          this.opts.log.warn({ job: job.jobId, bytes: p.preview!.length, max: MAX_PREVIEW_BYTES }, 'preview over the size bound: not sent');
        }
        const sendPreview = p.preview && !oversized && (now - lastPreview >= interval || p.step === p.total);
        if (sendPreview) lastPreview = now;
        this.opts.report({ case: 'progress', value: { jobId: job.jobId, step: p.step, total: p.total, previewWebp: sendPreview ? p.preview! : new Uint8Array() } });
      },
      signal,
    ).catch((err: unknown) => {
      span?.cancel();
      throw err;
    });
    h.rendered = true;
    const renderMs = Math.round(performance.now() - started);
    const costed: Promise<JobCostReport> | undefined = member ? member.share()?.cost : span?.end();
    // A render the backend says ran on the CPU used no GPU: it counts as a render of this node (its
    // GPU and driver, whether its energy was measured) with no GPU time and no GPU energy.
    const onCpu = result.device === 'cpu';
    const batch = member?.share()?.jobs;
    this.opts.log.info({ job: job.jobId, renderKey: job.renderKey, renderMs, attempt: job.attempt, ...(batch ? { batch } : {}) }, 'rendered');
    // How it was made (provenance.ts): the same for the same software, so a re-render still gives the same bytes.
    const stamped = addProvenanceChunk(result.png, jobProvenance(await this.software, job, result.model ?? job.model, result.infotext?.modelHash, result.device));
    const png = kind === 'upscale' ? stamped : addPngTextChunk(stamped, 'parameters', this.parametersText(job, params, result));
    const meta = imageObjectMeta(job);
    const upload = (key: string, body: Buffer, type: string) =>
      withRetry(() => this.opts.storage.put(key, body, type, meta), {
        signal,
        onRetry: (err, attempt, delay) => this.opts.log.warn({ job: job.jobId, key, attempt, delayMs: Math.round(delay), err: String(err) }, 'upload failed, retrying'),
      });
    const stored = (async () => {
      // Let the loop start the next render first: thumbnail encoding and request signing are CPU work.
      await new Promise((r) => setImmediate(r));
      // Thumbnail first: the image's existence is what marks the render as stored.
      if (keys.thumb) await upload(keys.thumb, await makeThumbnail(png), 'image/webp');
      await upload(keys.image, png, 'image/png');
      const metered = await costed;
      const cost = metered && { ...metered, ...(onCpu ? { gpuMs: 0, energyJoules: 0 } : { gpuMs: Math.round(metered.gpuMs) }) };
      if (signal.aborted) return;
      this.opts.report({
        case: 'completed',
        value: {
          jobId: job.jobId,
          renderKey: job.renderKey,
          imageKey: keys.image,
          thumbKey: keys.thumb,
          renderMs,
          skipped: false,
          imageBytes: BigInt(png.length),
          ...(result.model ? { model: result.model } : {}),
          ...(cost ? { cost } : {}),
        },
      });
    })();
    return { stored };
  }

  /** The job's registry model, from the node's cache or downloaded into it; fails with ModelUnavailableError. */
  private pullModel(job: JobAssignment, signal: AbortSignal): Promise<PulledModel> {
    const label = job.model || job.modelHash.slice(0, 12);
    if (!this.opts.models) return Promise.reject(new ModelUnavailableError(job.modelHash, `model ${label} (${job.modelHash.slice(0, 12)}) is a registry model and this node has no model cache`));
    return this.opts.models.use(job.modelHash, label, signal);
  }

  /**
   * The A1111 text; the result's model is what the backend says it used (an exec
   * generator may pick one for "default"), its infotext fields replace the params they come from.
   */
  private parametersText(job: JobAssignment, params: RenderParams, result: RenderResult): string {
    const { width, height, steps, guidance, ...rest } = params;
    const info = result.infotext ?? {};
    const extra = Object.entries(rest).filter(([k, v]) => ['string', 'number', 'boolean'].includes(typeof v) && !(k === 'sampler' && info.sampler) && !(k === 'negative_prompt' && info.negativePrompt));
    return formatA1111Parameters({
      prompt: job.prompt,
      ...(info.negativePrompt ? { negativePrompt: info.negativePrompt } : {}),
      seed: Number(job.seed),
      width,
      height,
      steps,
      ...(guidance !== undefined ? { guidance } : {}),
      ...(info.sampler ? { sampler: info.sampler } : {}),
      ...(info.modelHash ? { modelHash: info.modelHash } : {}),
      model: result.model ?? job.model,
      backend: job.backend,
      extra: Object.fromEntries(extra) as Record<string, string | number | boolean>,
    });
  }
}

/** A stored render a job may read (img2img's init): only `images/RK.png`, given as that key or as RK. */
function storedImageKey(ref: string): string {
  try {
    return imageKey(assertRenderKey(renderKeyOfImageRef(ref)));
  } catch {
    throw new RenderFailure(`${JSON.stringify(ref)} is not a stored image: give an images/<renderKey>.png key or its renderKey`);
  }
}

const jobKind = (job: JobAssignment): JobKind => (job.kind === 'upscale' ? 'upscale' : 'render');

/** Where a job's output goes. Upscales have no thumbnail of their own; the original's stands for them. */
function outputKeys(job: JobAssignment): { image: string; thumb: string } {
  return jobKind(job) === 'upscale' ? { image: upscaledKey(job.renderKey), thumb: '' } : { image: imageKey(job.renderKey), thumb: thumbKey(job.renderKey) };
}

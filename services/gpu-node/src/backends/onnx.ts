/**
 * The `onnx` backend: Stable Diffusion in-process over onnxruntime-node, from
 * a diffusers ONNX export (`optimum-cli export onnx`) or the built-in
 * nightshift-tiny-sd. txt2img and img2img (params.init + params.strength),
 * progress after every step with a cheap latent preview (at most one per
 * previewIntervalMs, and always the last step's), the VAE-decoded PNG at the
 * end, and the A1111 fields only the backend knows (sampler used, model hash).
 *
 * renderBatch renders sibling jobs (one prompt and params, several seeds) in
 * one UNet batch, each image from its own seed's generator; render is a batch
 * of one on the same path, so a job's bytes do not depend on its batch
 * (onnx-batch.test.ts checks them equal).
 */
import { A1111_SAMPLER_NAMES, NoiseWorkers, unscaleForDecode } from '@nightshift/diffusion';
import type { FloatTensor } from '@nightshift/models';
import { RenderFailure, type Backend, type RenderProgress, type RenderRequest, type RenderResult } from './backend.js';
import { initImageTensor, latentPreviewWebp, vaeImageToPng } from './onnx-image.js';
import { OnnxModels, type LoadedSdModel, type OnnxModelsOptions } from './onnx-models.js';
import { readOnnxParams, type OnnxJobParams } from './onnx-params.js';
import { effectiveProviders, probeProviders, providerDevice, type ProviderProbe } from './onnx-provider.js';
import { ProgressQueue } from './onnx-progress.js';
import { sampleLatent, type RenderTiming } from './onnx-sample.js';

export interface OnnxBackendOptions extends OnnxModelsOptions {
  /** Longest side of preview frames (px). */
  previewMaxSide?: number;
  /** WebP quality of previews. */
  previewQuality?: number;
  /**
   * Least time between two preview frames (the last step always has one). The worker
   * forwards at most one every 250 ms, so encoding one per step would be wasted work
   * on fast models (a WebP costs a few ms; a tiny-model step well under one).
   */
  previewIntervalMs?: number;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
const isAbort = (err: unknown) => err instanceof Error && err.name === 'AbortError';

/** What makes two jobs render the same picture but for the seed: they may share a batch. */
function siblingKey(req: RenderRequest, p: OnnxJobParams): string {
  return JSON.stringify([req.kind, req.model, req.modelPath ?? '', req.prompt, p]);
}

export class OnnxBackend implements Backend {
  readonly name = 'onnx';
  readonly models: readonly string[];
  private readonly registry: OnnxModels;
  private probe: Promise<ProviderProbe> | undefined;
  private readonly configured: readonly string[];
  /** Latent noise drawn in worker threads while the models run (onnx-sample.ts). */
  private readonly noise = new NoiseWorkers();

  constructor(private readonly opts: OnnxBackendOptions) {
    const configured = opts.executionProviders?.length ? opts.executionProviders : ['cpu'];
    this.configured = configured;
    this.registry = new OnnxModels({ ...opts, executionProviders: configured, resolveProviders: async () => effectiveProviders(configured, await this.providers()) });
    this.models = this.registry.names();
  }

  /** The configured execution providers this machine can use (probed once). */
  providers(): Promise<ProviderProbe> {
    this.probe ??= probeProviders(this.configured);
    return this.probe;
  }

  /** What the node advertises (Capabilities.execution_provider): the first usable provider, e.g. "cuda" or "cpu"; "" when none is. */
  async executionProvider(): Promise<string> {
    return (await this.providers()).usable[0] ?? '';
  }

  /** Names of the models loaded now (least recently used first). */
  loadedModels(): string[] {
    return this.registry.loadedNames();
  }

  async render(req: RenderRequest, onProgress: (p: RenderProgress) => void, signal: AbortSignal, timing?: RenderTiming): Promise<RenderResult> {
    const [result] = await this.renderBatch([req], (_, p) => onProgress(p), signal, timing);
    return result!;
  }

  /**
   * Several jobs that differ only in their seed (same prompt, model and
   * params, else a RenderFailure) in one UNet batch; results in the jobs'
   * order. onProgress gets each job's index.
   */
  async renderBatch(reqs: readonly RenderRequest[], onProgress: (index: number, p: RenderProgress) => void, signal: AbortSignal, timing?: RenderTiming): Promise<RenderResult[]> {
    const first = reqs[0];
    if (!first) throw new RangeError('renderBatch needs at least one job');
    for (const req of reqs) if (req.kind !== 'render') throw new RenderFailure(`the onnx backend only runs render jobs, got a ${req.kind} job`);
    const p = readOnnxParams(first.params);
    const key = siblingKey(first, p);
    for (const req of reqs.slice(1)) {
      if (siblingKey(req, readOnnxParams(req.params)) !== key) throw new RenderFailure(`job ${req.jobId} cannot share a batch with ${first.jobId}: only seeds may differ`);
    }
    const lease = await this.registry.acquire(first.model, first.modelPath);
    try {
      signal.throwIfAborted();
      return await this.sample(lease.value, reqs, p, onProgress, signal, timing);
    } finally {
      lease.release();
    }
  }

  private async sample(
    loaded: LoadedSdModel,
    reqs: readonly RenderRequest[],
    p: OnnxJobParams,
    onProgress: (index: number, p: RenderProgress) => void,
    signal: AbortSignal,
    timing: RenderTiming | undefined,
  ): Promise<RenderResult[]> {
    const init = p.init === undefined ? undefined : { image: await this.initImage(reqs[0]!, p), strength: p.strength };
    const sampler = p.sampler ?? loaded.sampler;
    const { model } = loaded;
    const maxSide = this.opts.previewMaxSide ?? 128;
    const quality = this.opts.previewQuality ?? 60;
    const interval = this.opts.previewIntervalMs ?? 250;
    const h = p.height / 8;
    const w = p.width / 8;
    let lastPreview = performance.now();
    const progress = new ProgressQueue(signal);
    try {
      const result = await sampleLatent({
        model,
        prompt: reqs[0]!.prompt,
        negativePrompt: p.negativePrompt,
        seeds: reqs.map((r) => r.seed),
        width: p.width,
        height: p.height,
        steps: p.steps,
        guidance: p.guidance,
        sampler,
        schedulerConfig: loaded.schedulerConfig,
        ...(init ? { init } : {}),
        signal,
        noise: this.noise,
        ...(timing ? { timing } : {}),
        onStep: (step, total, denoised) => {
          const now = performance.now();
          if (step < total && now - lastPreview < interval) {
            progress.push(undefined, () => reqs.forEach((_, k) => onProgress(k, { step, total })));
            return;
          }
          lastPreview = now;
          const per = 4 * h * w;
          // Not awaited: sharp encodes on libuv's pool (a batch's frames in parallel) while the next step runs;
          // latentPreviewWebp reads the latent before its first await, so the sampler may move on.
          const frames = Promise.all(reqs.map((_, k) => latentPreviewWebp(denoised.subarray(k * per, (k + 1) * per), h, w, maxSide, quality)));
          progress.push(frames, (previews) => previews.forEach((preview, k) => onProgress(k, { step, total, preview })));
          if (timing) timing.previewMs += performance.now() - now;
        },
      });
      const t0 = performance.now();
      const image: FloatTensor = await model.decode({ data: unscaleForDecode(result.latent, model.scalingFactor), dims: result.dims });
      if (timing) timing.modelMs += performance.now() - t0;
      signal.throwIfAborted();
      const t1 = performance.now();
      const pngs = await Promise.all(reqs.map((_, k) => vaeImageToPng(image, k)));
      if (timing) timing.pngMs += performance.now() - t1;
      // Every preview is out before the image (the last frame encoded beside the decode and the PNG).
      const tp = performance.now();
      await progress.flush();
      if (timing) timing.previewMs += performance.now() - tp;
      signal.throwIfAborted();
      const infotext = {
        sampler: A1111_SAMPLER_NAMES[sampler],
        modelHash: loaded.hash,
        ...(p.negativePrompt ? { negativePrompt: p.negativePrompt } : {}),
      };
      // Where the models run (their sessions' first provider), for the PNG's provenance.
      const device = providerDevice(effectiveProviders(this.configured, await this.providers())[0]);
      return reqs.map((req, k) => ({ png: pngs[k]!, model: req.model, infotext, device }));
    } catch (err) {
      progress.close();
      if (isAbort(err) || err instanceof RenderFailure) throw err;
      const text = message(err);
      // onnxruntime's allocation failures (CUDA or host): the scheduler retries on a card with more memory.
      throw new RenderFailure(text, '', /out of memory|failed to allocate/i.test(text));
    }
  }

  private async initImage(req: RenderRequest, p: OnnxJobParams) {
    if (!req.loadImage) throw new RenderFailure('params.init: this node cannot read stored images for img2img');
    let bytes: Buffer;
    try {
      bytes = await req.loadImage(p.init!);
    } catch (err) {
      throw new RenderFailure(`params.init: cannot read the init image ${JSON.stringify(p.init)}: ${message(err)}`);
    }
    try {
      return await initImageTensor(bytes, p.width, p.height);
    } catch (err) {
      throw new RenderFailure(`params.init: ${JSON.stringify(p.init)} is not a readable image: ${message(err)}`);
    }
  }

  async close(): Promise<void> {
    await this.noise.close();
    await this.registry.close();
  }
}

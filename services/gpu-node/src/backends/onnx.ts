/**
 * The `onnx` backend: Stable Diffusion in-process over onnxruntime-node, from
 * a diffusers ONNX export (`optimum-cli export onnx`) or the built-in
 * nightshift-tiny-sd. txt2img and img2img (params.init + params.strength),
 * progress after every step with a cheap latent preview (at most one per
 * previewIntervalMs, and always the last step's), the VAE-decoded PNG at the
 * end, and the A1111 fields only the backend knows (sampler used, model hash).
 */
import { A1111_SAMPLER_NAMES, unscaleForDecode } from '@nightshift/diffusion';
import { RenderFailure, type Backend, type RenderProgress, type RenderRequest, type RenderResult } from './backend.js';
import { initImageTensor, latentPreviewWebp, vaeImageToPng } from './onnx-image.js';
import { OnnxModels, type OnnxModelsOptions } from './onnx-models.js';
import { readOnnxParams, type OnnxJobParams } from './onnx-params.js';
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

export class OnnxBackend implements Backend {
  readonly name = 'onnx';
  readonly models: readonly string[];
  private readonly registry: OnnxModels;

  constructor(private readonly opts: OnnxBackendOptions) {
    this.registry = new OnnxModels(opts);
    this.models = this.registry.names();
  }

  async render(req: RenderRequest, onProgress: (p: RenderProgress) => void, signal: AbortSignal, timing?: RenderTiming): Promise<RenderResult> {
    if (req.kind !== 'render') throw new RenderFailure(`the onnx backend only runs render jobs, got a ${req.kind} job`);
    const p = readOnnxParams(req.params);
    const loaded = await this.registry.get(req.model);
    signal.throwIfAborted();
    const init = p.init === undefined ? undefined : { image: await this.initImage(req, p), strength: p.strength };
    const sampler = p.sampler ?? loaded.sampler;
    const { model } = loaded;
    const maxSide = this.opts.previewMaxSide ?? 128;
    const quality = this.opts.previewQuality ?? 60;
    const interval = this.opts.previewIntervalMs ?? 250;
    let lastPreview = performance.now();
    try {
      const result = await sampleLatent({
        model,
        prompt: req.prompt,
        negativePrompt: p.negativePrompt,
        seeds: [req.seed],
        width: p.width,
        height: p.height,
        steps: p.steps,
        guidance: p.guidance,
        sampler,
        schedulerConfig: loaded.schedulerConfig,
        ...(init ? { init } : {}),
        signal,
        ...(timing ? { timing } : {}),
        onStep: async (step, total, denoised) => {
          const now = performance.now();
          if (step < total && now - lastPreview < interval) return onProgress({ step, total });
          lastPreview = now;
          const preview = await latentPreviewWebp(denoised, p.height / 8, p.width / 8, maxSide, quality);
          if (timing) timing.previewMs += performance.now() - now;
          onProgress({ step, total, preview });
        },
      });
      const t0 = performance.now();
      const image = await model.decode({ data: unscaleForDecode(result.latent, model.scalingFactor), dims: result.dims });
      if (timing) timing.modelMs += performance.now() - t0;
      signal.throwIfAborted();
      const t1 = performance.now();
      const png = await vaeImageToPng(image);
      if (timing) timing.pngMs += performance.now() - t1;
      return {
        png,
        model: req.model,
        infotext: {
          sampler: A1111_SAMPLER_NAMES[sampler],
          modelHash: loaded.hash,
          ...(p.negativePrompt ? { negativePrompt: p.negativePrompt } : {}),
        },
      };
    } catch (err) {
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
    await this.registry.close();
  }
}

/**
 * The built-in `procedural` backend: the deterministic painter of
 * @nightshift/models behind the Backend interface, not an AI model. This file
 * only adds what a render job needs around it: step-by-step progress with
 * preview frames, abort between steps, and the PNG at the end.
 */
import { encodePng, PreviewRamp, renderProcedural, validateRenderInput } from '@nightshift/models';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';
import type { Backend, RenderProgress, RenderRequest, RenderResult } from './backend.js';

export interface ProceduralOptions {
  /** Longest side of preview frames (px). */
  previewMaxSide?: number;
  /** WebP quality of previews. */
  previewQuality?: number;
  /** Upper bound on preview frames per render (the last step always has one). */
  maxPreviews?: number;
}

function abortError(): Error {
  return new DOMException('render aborted', 'AbortError');
}

function checkAbort(signal: AbortSignal): void {
  if (signal.aborted) throw abortError();
}

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class ProceduralBackend implements Backend {
  readonly name = 'procedural';
  readonly models: readonly string[] = [PROCEDURAL_MODEL];
  private readonly previewMaxSide: number;
  private readonly previewQuality: number;
  private readonly maxPreviews: number;

  constructor(opts: ProceduralOptions = {}) {
    this.previewMaxSide = opts.previewMaxSide ?? 128;
    this.previewQuality = opts.previewQuality ?? 60;
    this.maxPreviews = Math.max(1, opts.maxPreviews ?? 8);
  }

  async render(req: RenderRequest, onProgress: (p: RenderProgress) => void, signal: AbortSignal): Promise<RenderResult> {
    const { width, height, steps } = req.params;
    validateRenderInput(req.prompt, req.seed, width, height, steps);
    checkAbort(signal);

    const img = renderProcedural(req.prompt, req.seed, width, height);
    const previews = new PreviewRamp(img, req.prompt, req.seed, { maxSide: this.previewMaxSide, quality: this.previewQuality });

    const interval = Math.max(1, Math.ceil(steps / this.maxPreviews));
    for (let step = 1; step <= steps; step++) {
      // Yield each step so an abort (or the node's heartbeat) gets a turn.
      await yieldTurn();
      checkAbort(signal);
      let preview: Buffer | undefined;
      if (step % interval === 0 || step === steps) {
        preview = await previews.frameAt(step / steps);
        checkAbort(signal);
      }
      onProgress(preview ? { step, total: steps, preview } : { step, total: steps });
    }

    const png = await encodePng(img.data, width, height);
    checkAbort(signal);
    // A CPU painter: its provenance names no GPU, so its bytes do not depend on the node's card.
    return { png, device: 'cpu' };
  }
}

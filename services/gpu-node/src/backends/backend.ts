/**
 * A render backend turns one job into one PNG. Backends are plugins behind this
 * interface; the node runtime owns uploads, retries and reporting.
 */
export interface RenderParams {
  width: number;
  height: number;
  steps: number;
  guidance?: number;
  [key: string]: unknown;
}

export type JobKind = 'render' | 'upscale';

export interface RenderRequest {
  jobId: string;
  renderKey: string;
  kind: JobKind;
  /** 1 for a job's first try; retries count up (unknown: a first try). */
  attempt?: number;
  prompt: string;
  seed: number;
  params: RenderParams;
  model: string;
  /** The job's registry model (issue 14): its folder in the node's model cache, verified and held for the job. */
  modelPath?: string;
  /** For upscale jobs: loads the source image (PNG bytes, with its metadata chunks). */
  loadInput?: () => Promise<Buffer>;
  /**
   * Render jobs: loads a stored image named by the job (params.init for
   * img2img), as an `images/…png` key or its renderKey; refuses any other key.
   */
  loadImage?: (ref: string) => Promise<Buffer>;
}

export interface RenderProgress {
  step: number;
  total: number;
  /** Newest intermediate image as an encoded PNG or WebP, when the backend has one. */
  preview?: Buffer;
}

export interface RenderResult {
  /** The final image, PNG-encoded. Render jobs: the runtime adds the A1111 parameters chunk. Upscale jobs: the backend keeps the source's chunks itself. */
  png: Buffer;
  /** Model that produced the output, when it differs from the requested one. */
  model?: string;
  /**
   * A1111 `parameters` fields only the backend knows; `sampler` and
   * `negativePrompt` replace the params they come from (params.sampler,
   * params.negative_prompt) in the text.
   */
  infotext?: { sampler?: string; negativePrompt?: string; modelHash?: string };
  /**
   * Where it rendered, for the PNG's provenance: 'cpu' records no GPU or
   * driver; 'gpu', or unknown (an exec generator), the node's GPU.
   */
  device?: RenderDevice;
}

export type RenderDevice = 'cpu' | 'gpu';

/**
 * A failure with details the scheduler uses: the job's log tail (shown through
 * the API) and whether it ran out of GPU memory (retried on a bigger card).
 */
export class RenderFailure extends Error {
  constructor(
    message: string,
    readonly logTail = '',
    readonly outOfMemory = false,
  ) {
    super(message);
    this.name = 'RenderFailure';
  }
}

export interface Backend {
  readonly name: string;
  /** Models this backend can render with (advertised to the coordinator). */
  readonly models: readonly string[];
  render(req: RenderRequest, onProgress: (p: RenderProgress) => void, signal: AbortSignal): Promise<RenderResult>;
  /** Frees resources (loaded models, child processes) when the node stops. */
  close?(): Promise<void>;
}

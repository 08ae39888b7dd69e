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

export interface RenderRequest {
  jobId: string;
  renderKey: string;
  prompt: string;
  seed: number;
  params: RenderParams;
  model: string;
}

export interface RenderProgress {
  step: number;
  total: number;
  /** Newest intermediate image as an encoded PNG or WebP, when the backend has one. */
  preview?: Buffer;
}

export interface RenderResult {
  /** The final image, PNG-encoded, without Nightshift's metadata (the runtime adds it). */
  png: Buffer;
}

export interface Backend {
  readonly name: string;
  /** Models this backend can render with (advertised to the coordinator). */
  readonly models: readonly string[];
  render(req: RenderRequest, onProgress: (p: RenderProgress) => void, signal: AbortSignal): Promise<RenderResult>;
}

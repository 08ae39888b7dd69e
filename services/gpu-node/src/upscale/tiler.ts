/**
 * Runs a super-resolution ONNX model (Real-ESRGAN layout: float [1,3,h,w] in
 * 0..1 → [1,3,s·h,s·w]) over an image of any size, one tile at a time, on
 * onnxruntime-node's CPU provider.
 *
 * Each tile is a `tileSize` square "core" read together with `overlap` pixels
 * of context on every side (less at the image border, where the model's own
 * border handling applies as it would to the whole image); only the core's
 * ×s pixels are kept. A model whose receptive field fits in the overlap thus
 * gives exactly the untiled result, with no seams, and memory is bounded by
 * (tileSize + 2·overlap)² · (1 + s²) floats per tile, whatever the image size.
 * Models exported with a fixed input size get windows of exactly that size.
 */
import * as ort from 'onnxruntime-node';

/** Interleaved 8-bit RGB, row-major (what sharp's raw output gives). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface TileOptions {
  /** Side of a tile's core in input pixels (default 128). */
  tileSize?: number;
  /** Context read around each core, in input pixels (default 16). */
  overlap?: number;
  signal?: AbortSignal;
  /** Called after each tile with (tiles done, total tiles). */
  onTile?: (done: number, total: number) => void;
}

export interface LoadOptions {
  /** onnxruntime intra-op threads; 0 lets onnxruntime choose (all cores). */
  threads?: number;
}

export const DEFAULT_TILE_SIZE = 128;
export const DEFAULT_OVERLAP = 16;

export class TiledUpscaler {
  private scaleSeen: number | undefined;

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly inputName: string,
    private readonly outputName: string,
    /** Fixed [height, width] of the model input, when the export pins it. */
    private readonly fixedSize: readonly [number, number] | undefined,
  ) {}

  static async load(model: string | Uint8Array, opts: LoadOptions = {}): Promise<TiledUpscaler> {
    const sessionOpts: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    };
    const session = typeof model === 'string' ? await ort.InferenceSession.create(model, sessionOpts) : await ort.InferenceSession.create(model, sessionOpts);
    const [inputName] = session.inputNames;
    const [outputName] = session.outputNames;
    if (!inputName || !outputName) throw new Error('upscale model must have one image input and one image output');
    const meta = session.inputMetadata[0];
    let fixed: [number, number] | undefined;
    if (meta?.isTensor) {
      if (meta.type !== 'float32') throw new Error(`upscale model input must be float32, is ${meta.type}`);
      const shape = meta.shape;
      if (shape.length !== 4 || (typeof shape[1] === 'number' && shape[1] !== 3)) {
        throw new Error(`upscale model input must be [N,3,H,W], is [${shape.join(',')}]`);
      }
      const [h, w] = [shape[2], shape[3]];
      if (typeof h === 'number' && typeof w === 'number' && h > 0 && w > 0) fixed = [h, w];
    }
    return new TiledUpscaler(session, inputName, outputName, fixed);
  }

  /** The model's scale factor, known after the first tile has run. */
  get scale(): number | undefined {
    return this.scaleSeen;
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  async upscale(img: RgbImage, opts: TileOptions = {}): Promise<RgbImage> {
    const { width: W, height: H } = img;
    if (img.data.length !== W * H * 3) throw new Error(`RGB image of ${W}x${H} needs ${W * H * 3} bytes, has ${img.data.length}`);
    const overlap = opts.overlap ?? DEFAULT_OVERLAP;
    let tileH = opts.tileSize ?? DEFAULT_TILE_SIZE;
    let tileW = tileH;
    if (!Number.isInteger(tileH) || tileH < 1) throw new RangeError(`tile size must be a positive integer, got ${tileH}`);
    if (!Number.isInteger(overlap) || overlap < 0) throw new RangeError(`overlap must be a non-negative integer, got ${overlap}`);
    if (this.fixedSize) {
      // The window is the model's size; the core is what remains inside the context.
      tileH = Math.min(tileH, this.fixedSize[0] - 2 * overlap);
      tileW = Math.min(tileW, this.fixedSize[1] - 2 * overlap);
      if (tileH < 1 || tileW < 1) throw new RangeError(`overlap ${overlap} leaves no core in the model's fixed ${this.fixedSize.join('x')} input`);
    }
    const rows = Math.ceil(H / tileH);
    const cols = Math.ceil(W / tileW);
    const total = rows * cols;
    let out: Uint8Array | undefined;
    let s = 0;
    let done = 0;
    for (let ty = 0; ty < rows; ty++) {
      for (let tx = 0; tx < cols; tx++) {
        if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
        const core = { x0: tx * tileW, y0: ty * tileH, x1: Math.min(W, (tx + 1) * tileW), y1: Math.min(H, (ty + 1) * tileH) };
        const win = this.window(core, W, H, overlap);
        const result = await this.runTile(img, win);
        const ts = this.checkScale(result.dims, win);
        if (!out) {
          s = ts;
          out = new Uint8Array(W * s * H * s * 3);
        }
        writeCore(out, W * s, result.data, win, core, s);
        opts.onTile?.(++done, total);
      }
    }
    return { data: out ?? new Uint8Array(0), width: W * s, height: H * s };
  }

  /** The input window for a core: the core plus overlap, clamped to the image (or the model's fixed size). */
  private window(core: { x0: number; y0: number; x1: number; y1: number }, W: number, H: number, overlap: number) {
    const span = (c0: number, c1: number, size: number, fixed: number | undefined): [number, number] => {
      if (fixed === undefined) return [Math.max(0, c0 - overlap), Math.min(size, c1 + overlap)];
      // Slide a fixed-size window to hold the core with as much context as fits;
      // an image smaller than the window is padded by repeating its edge.
      const start = Math.max(0, Math.min(c0 - overlap, size - fixed));
      return [start, start + fixed];
    };
    const [x0, x1] = span(core.x0, core.x1, W, this.fixedSize?.[1]);
    const [y0, y1] = span(core.y0, core.y1, H, this.fixedSize?.[0]);
    return { x0, y0, x1, y1 };
  }

  private async runTile(img: RgbImage, win: { x0: number; y0: number; x1: number; y1: number }) {
    const w = win.x1 - win.x0;
    const h = win.y1 - win.y0;
    const plane = w * h;
    const input = new Float32Array(3 * plane);
    for (let y = 0; y < h; y++) {
      const sy = Math.min(img.height - 1, win.y0 + y);
      for (let x = 0; x < w; x++) {
        const sx = Math.min(img.width - 1, win.x0 + x);
        const si = (sy * img.width + sx) * 3;
        const di = y * w + x;
        input[di] = img.data[si]! / 255;
        input[plane + di] = img.data[si + 1]! / 255;
        input[2 * plane + di] = img.data[si + 2]! / 255;
      }
    }
    const tensor = new ort.Tensor('float32', input, [1, 3, h, w]);
    const results = await this.session.run({ [this.inputName]: tensor });
    const output = results[this.outputName];
    if (!output || output.type !== 'float32') throw new Error(`upscale model output ${this.outputName} is not a float32 tensor`);
    // Copy out so the native buffer can go now, not at the next GC.
    const data = new Float32Array(output.data as Float32Array);
    const dims = [...output.dims];
    tensor.dispose();
    for (const t of Object.values(results)) t.dispose();
    return { data, dims };
  }

  private checkScale(dims: readonly number[], win: { x0: number; y0: number; x1: number; y1: number }): number {
    const w = win.x1 - win.x0;
    const h = win.y1 - win.y0;
    const [n, c, oh, ow] = dims;
    const s = oh !== undefined ? oh / h : NaN;
    if (dims.length !== 4 || n !== 1 || c !== 3 || !Number.isInteger(s) || s < 1 || ow !== w * s) {
      throw new Error(`upscale model gave [${dims.join(',')}] for a [1,3,${h},${w}] tile; expected [1,3,s·${h},s·${w}] with an integer scale s`);
    }
    if (this.scaleSeen !== undefined && this.scaleSeen !== s) throw new Error(`upscale model scale changed between tiles (${this.scaleSeen} then ${s})`);
    this.scaleSeen = s;
    return s;
  }
}

/** Copies a tile's core (×s) from the model output (CHW floats) into the interleaved 8-bit result. */
function writeCore(
  out: Uint8Array,
  outW: number,
  tile: Float32Array,
  win: { x0: number; y0: number; x1: number; y1: number },
  core: { x0: number; y0: number; x1: number; y1: number },
  s: number,
): void {
  const tw = (win.x1 - win.x0) * s;
  const plane = tw * (win.y1 - win.y0) * s;
  const ox = (core.x0 - win.x0) * s;
  const oy = (core.y0 - win.y0) * s;
  const cw = (core.x1 - core.x0) * s;
  const ch = (core.y1 - core.y0) * s;
  for (let y = 0; y < ch; y++) {
    const src = (oy + y) * tw + ox;
    let dst = ((core.y0 * s + y) * outW + core.x0 * s) * 3;
    for (let x = 0; x < cw; x++) {
      out[dst++] = toByte(tile[src + x]!);
      out[dst++] = toByte(tile[plane + src + x]!);
      out[dst++] = toByte(tile[2 * plane + src + x]!);
    }
  }
}

function toByte(v: number): number {
  // NaN (a broken model) becomes 0 rather than poisoning the PNG encoder.
  return v > 0 ? (v < 1 ? Math.round(v * 255) : 255) : 0;
}

/**
 * nightshift-tiny-upscaler-x4: the built-in *test* super-resolution model.
 *
 * It has the Real-ESRGAN interface (float `input` [N,3,H,W] in 0..1 →
 * `output` [N,3,4H,4W] in 0..1, H and W free) so the real upscale path
 * (onnxruntime-node, tiling, PNG metadata) runs offline, but it is not a
 * trained network: it is bicubic ×4 (a = −0.75, half-pixel centres, edge
 * clamped) followed by a mild 3×3 unsharp mask, folded into one sub-pixel
 * convolution (48 output channels, one per colour × 4×4 output phase) and a
 * DepthToSpace "pixel shuffle", the layout ESPCN-style networks use. As one
 * Conv it runs ~10× faster on CPU than onnxruntime's cubic Resize.
 *
 * Deterministic, about 10 KB. Its receptive field is 3 input pixels, so
 * tiling with an overlap ≥ 3 reproduces the untiled result, which the seam
 * tests rely on; real models see further and want the 16 px default.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { attr, DataType, GraphBuilder } from './onnx-builder.js';
import { ensureFile } from './model-folder.js';

export const TINY_UPSCALER_NAME = 'nightshift-tiny-upscaler-x4';
/** Bump when any written byte changes. */
export const TINY_UPSCALER_VERSION = 1;
export const TINY_UPSCALER_SCALE = 4;
export const TINY_UPSCALER_FILE = `${TINY_UPSCALER_NAME}.onnx`;

/** Strength of the unsharp mask: out = x + s·(x − gauss(x)). Mild: flat areas stay flat, edges crisp up a little. */
export const TINY_UPSCALER_SHARPEN = 0.5;
/** Keys's cubic coefficient, as PyTorch's and OpenCV's bicubic. */
const CUBIC_A = -0.75;
/** Kernel radius in input pixels: 2 for the cubic taps, +1 for the 3×3 sharpen in output space. */
const R = 3;

/** The 4 cubic weights for taps floor(x)−1 … floor(x)+2 at fractional offset t. */
function cubicWeights(t: number): [number, number, number, number] {
  const a = CUBIC_A;
  const w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a;
  const w1 = ((a + 2) * t - (a + 3)) * t * t + 1;
  const u = 1 - t;
  const w2 = ((a + 2) * u - (a + 3)) * u * u + 1;
  return [w0, w1, w2, 1 - w0 - w1 - w2];
}

/**
 * 1-D bicubic taps for output phase q (output pixel 4i+q, any integer q):
 * weight per input offset from i, as a map offset → weight.
 */
function phaseTaps(q: number): Map<number, number> {
  const s = TINY_UPSCALER_SCALE;
  const x = (q + 0.5) / s - 0.5; // position relative to input pixel i (half-pixel centres)
  const f = Math.floor(x);
  const w = cubicWeights(x - f);
  return new Map(w.map((v, k) => [f - 1 + k, v]));
}

/**
 * Conv weights [3·16, 1, 2R+1, 2R+1]: for each colour and output phase
 * (py, px), the input-space kernel of "sharpen ∘ bicubic".
 */
function subPixelKernel(): Float32Array {
  const s = TINY_UPSCALER_SCALE;
  const k = 2 * R + 1;
  const gauss = [1, 2, 1, 2, 4, 2, 1, 2, 1].map((v) => v / 16);
  const sharpen = gauss.map((v, i) => (i === 4 ? 1 + TINY_UPSCALER_SHARPEN : 0) - TINY_UPSCALER_SHARPEN * v);
  const phase = new Float32Array(s * s * k * k);
  for (let py = 0; py < s; py++) {
    for (let px = 0; px < s; px++) {
      const base = (py * s + px) * k * k;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const sw = sharpen[(dy + 1) * 3 + (dx + 1)]!;
          // The neighbouring output pixel's taps, relative to this pixel's input position.
          for (const [oy, wy] of phaseTaps(py + dy)) {
            for (const [ox, wx] of phaseTaps(px + dx)) {
              if (Math.abs(oy) > R || Math.abs(ox) > R) throw new Error('tiny upscaler: kernel radius too small');
              phase[base + (oy + R) * k + (ox + R)]! += sw * wy * wx;
            }
          }
        }
      }
    }
  }
  const out = new Float32Array(3 * phase.length);
  for (let c = 0; c < 3; c++) out.set(phase, c * phase.length);
  return out;
}

/**
 * The model's bytes (same code → same bytes). `fixedSize` pins the input to
 * [1,3,size,size], like some public exports, so tilers can be tested against that case.
 */
export function tinyUpscalerBytes(opts: { fixedSize?: number } = {}): Uint8Array {
  const s = TINY_UPSCALER_SCALE;
  const k = 2 * R + 1;
  const g = new GraphBuilder('nightshift_tiny_upscaler_x4');
  const n = opts.fixedSize;
  const x = g.input('input', DataType.FLOAT, n ? [1, 3, n, n] : ['batch', 3, 'height', 'width']);
  // Edge padding: at the image border the cubic taps clamp to the edge pixel, the same in a tile as in the whole image.
  const padded = g.op('Pad', [x, g.int64s('pad', [8], [0, 0, R, R, 0, 0, R, R])], { mode: attr.string('edge') });
  const phases = g.op('Conv', [padded, g.floats('subpixel_w', [3 * s * s, 1, k, k], subPixelKernel())], { group: attr.int(3) });
  // Channel c·16 + py·4 + px → pixel (4h + py, 4w + px) of colour c.
  const shuffled = g.op('DepthToSpace', [phases], { blocksize: attr.int(s), mode: attr.string('CRD') });
  g.op('Clip', [shuffled, g.scalar(0), g.scalar(1)], {}, 'output');
  g.output('output', DataType.FLOAT, n ? [1, 3, n * s, n * s] : ['batch', 3, 'height_x4', 'width_x4']);
  return g.toBytes({
    producerVersion: String(TINY_UPSCALER_VERSION),
    docString: 'nightshift-tiny-upscaler-x4: bicubic x4 + unsharp mask as one sub-pixel conv, Real-ESRGAN layout (test model, not a trained super-resolution network)',
  });
}

/** Writes `<outDir>/nightshift-tiny-upscaler-x4.onnx` and returns its absolute path. */
export async function buildTinyUpscaler(outDir: string): Promise<string> {
  const file = path.resolve(outDir, TINY_UPSCALER_FILE);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, tinyUpscalerBytes());
  return file;
}

/**
 * Makes sure `<modelsDir>/nightshift-tiny-upscaler-x4.onnx` holds the current
 * build and returns its absolute path. Written to a temporary sibling and
 * renamed, so concurrent callers and readers never see a partial file.
 */
export async function ensureTinyUpscaler(modelsDir: string): Promise<string> {
  return ensureFile(path.resolve(modelsDir, TINY_UPSCALER_FILE), tinyUpscalerBytes());
}

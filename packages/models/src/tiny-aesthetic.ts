/**
 * nightshift-tiny-aesthetic: the built-in *test* aesthetic head.
 *
 * It has the interface of a LAION-style aesthetic predictor exported to ONNX
 * (a float CLIP image embedding `embeds` [batch, D] → `score` [batch, 1], two
 * Linear layers with a ReLU between, written as Gemm with transB like a torch
 * export), but over nightshift-tiny-clip's concept space and with hand-set
 * weights, so its score means something visible on procedural images:
 *
 *   score = 5 + 4·relu(yellow) − 3·relu(other − 0.1)
 *
 * "Likes yellow, dislikes noise": an image without yellow never scores above
 * 5, an image with yellow (and little unexplained texture) always does. It is
 * not a model of beauty and is never described as one.
 *
 * Deterministic: the same code writes the same bytes.
 */
import path from 'node:path';
import { ensureFile } from './model-folder.js';
import { attr, DataType, GraphBuilder } from './onnx-builder.js';
import { OTHER, TINY_CLIP_CONCEPTS, TINY_CLIP_DIM } from './tiny-clip-concepts.js';

export const TINY_AESTHETIC_NAME = 'nightshift-tiny-aesthetic';
/** Bump when any written byte changes. */
export const TINY_AESTHETIC_VERSION = 1;
export const TINY_AESTHETIC_FILE = `${TINY_AESTHETIC_NAME}.onnx`;

/** The two layers' weights, torch Linear layout (out × in), for tests that recompute the score. */
export interface TinyAestheticWeights {
  /** [hidden, D] */
  w1: Float32Array;
  /** [hidden] */
  b1: Float32Array;
  /** [1, hidden] */
  w2: Float32Array;
  /** [1] */
  b2: Float32Array;
  hidden: number;
  dim: number;
}

const YELLOW = TINY_CLIP_CONCEPTS.indexOf('yellow');
/** Anti-aliased edges alone put about this much into "other"; beyond it, the image is noisy. */
const NOISE_ALLOWANCE = 0.1;

export function tinyAestheticWeights(): TinyAestheticWeights {
  const dim = TINY_CLIP_DIM;
  const hidden = 2;
  const w1 = new Float32Array(hidden * dim);
  w1[0 * dim + YELLOW] = 1; // unit 0: how yellow
  w1[1 * dim + OTHER] = 1; // unit 1: how much unexplained texture, past the allowance
  const b1 = Float32Array.from([0, -NOISE_ALLOWANCE]);
  const w2 = Float32Array.from([4, -3]);
  const b2 = Float32Array.from([5]);
  return { w1, b1, w2, b2, hidden, dim };
}

/** The head's ONNX bytes; `dim` overrides the input width (tests of the width check). */
export function tinyAestheticBytes(opts: { dim?: number } = {}): Uint8Array {
  const w = tinyAestheticWeights();
  const dim = opts.dim ?? w.dim;
  const w1 = dim === w.dim ? w.w1 : new Float32Array(w.hidden * dim);
  const g = new GraphBuilder('nightshift_tiny_aesthetic');
  const x = g.input('embeds', DataType.FLOAT, ['batch', dim]);
  const h = g.op('Relu', [g.op('Gemm', [x, g.floats('fc1_w', [w.hidden, dim], w1), g.floats('fc1_b', [w.hidden], w.b1)], { transB: attr.int(1) })]);
  g.op('Gemm', [h, g.floats('fc2_w', [1, w.hidden], w.w2), g.floats('fc2_b', [1], w.b2)], { transB: attr.int(1) }, 'score');
  g.output('score', DataType.FLOAT, ['batch', 1]);
  return g.toBytes({
    producerVersion: String(TINY_AESTHETIC_VERSION),
    docString: 'nightshift-tiny-aesthetic: 5 + 4*relu(yellow) - 3*relu(other - 0.1) over nightshift-tiny-clip embeddings (test head, not a model of beauty)',
  });
}

/**
 * Makes sure `<modelsDir>/nightshift-tiny-aesthetic.onnx` holds the current
 * build (atomically, model-folder.ts) and returns its absolute path.
 */
export async function ensureTinyAesthetic(modelsDir: string): Promise<string> {
  return ensureFile(path.resolve(modelsDir, TINY_AESTHETIC_FILE), tinyAestheticBytes());
}

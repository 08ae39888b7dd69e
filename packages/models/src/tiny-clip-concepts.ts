/**
 * The concept space both towers of nightshift-tiny-clip embed into: one
 * dimension per palette colour, one per shape, one "other"; and the model's
 * identity (name, version) written into its files.
 */
import { COLOR_NAMES, SHAPES } from '@nightshift/common';
import { attr, type GraphBuilder } from './onnx-builder.js';

export const TINY_CLIP_NAME = 'nightshift-tiny-clip';
/** Bump when any written byte changes, so ensureTinyClip rebuilds stale folders. */
export const TINY_CLIP_VERSION = 1;

/** Names of the embedding dimensions, in order: colours, shapes, then "other". */
export const TINY_CLIP_CONCEPTS: readonly string[] = [...COLOR_NAMES, ...SHAPES, 'other'];
export const TINY_CLIP_DIM = TINY_CLIP_CONCEPTS.length;

/** Square side the preprocessor resizes and crops to; small keeps the CPU cost trivial. */
export const TINY_CLIP_IMAGE_SIZE = 64;

/** Colour dimensions come first, then shapes, then "other". */
export const K = COLOR_NAMES.length;
export const SHAPE_OFFSET = K;
export const OTHER = K + SHAPES.length;

/** v / sqrt(sum(v²) + eps) over the last axis of a [B, D] tensor; an all-zero row stays zero. */
export function l2Normalise(g: GraphBuilder, v: string, outName: string): string {
  const sq = g.op('ReduceSum', [g.op('Mul', [v, v]), g.int64s(g.fresh('axis_last'), [1], [-1])], { keepdims: attr.int(1) });
  const norm = g.op('Sqrt', [g.op('Add', [sq, g.scalar(1e-12)])]);
  return g.op('Div', [v, norm], {}, outName);
}

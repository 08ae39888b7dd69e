/**
 * Graph pieces shared by nightshift-tiny-sd's four ONNX models: layers over
 * GraphBuilder, fixed random weights, and the float16 boundary of the
 * fp16 variant (float16 inputs and outputs, float32 inside).
 */
import { attr, DataType, GraphBuilder, type Dim } from './onnx-builder.js';
import { SeededWeights } from './seeded-weights.js';

/**
 * ONNX's FLOAT16 element type. The project's ONNX subset proto does not name
 * it, but proto3 enums are open, so the number is written as is.
 */
export const FLOAT16 = 10 as DataType;

export type Precision = 'fp32' | 'fp16';

/** One model being built: its graph, its weights and its float type at the boundary. */
export class TinyGraph {
  readonly g: GraphBuilder;
  readonly w: SeededWeights;

  constructor(
    name: string,
    seed: number,
    readonly precision: Precision,
  ) {
    this.g = new GraphBuilder(name);
    this.w = new SeededWeights(seed);
  }

  get floatType(): DataType {
    return this.precision === 'fp16' ? FLOAT16 : DataType.FLOAT;
  }

  /** A float input in the model's precision; returns a float32 value name. */
  floatInput(name: string, dims: readonly Dim[]): string {
    const x = this.g.input(name, this.floatType, dims);
    return this.precision === 'fp16' ? this.g.op('Cast', [x], { to: attr.int(DataType.FLOAT) }) : x;
  }

  /** Declares the float32 value `value` as the output `name`, cast to the model's precision. */
  floatOutput(value: string, name: string, dims: readonly Dim[]): void {
    this.g.op(this.precision === 'fp16' ? 'Cast' : 'Identity', [value], this.precision === 'fp16' ? { to: attr.int(FLOAT16) } : {}, name);
    this.g.output(name, this.floatType, dims);
  }

  /** x·σ(x). */
  silu(x: string): string {
    return this.g.op('Mul', [x, this.g.op('Sigmoid', [x])]);
  }

  /** x·W + b over the last axis, W [inF, outF]. */
  linear(name: string, x: string, inF: number, outF: number, gain = 1): string {
    const w = this.g.floats(`${name}.weight`, [inF, outF], this.w.layer(`${name}.weight`, inF * outF, inF, gain));
    const b = this.g.floats(`${name}.bias`, [outF], this.w.uniform(`${name}.bias`, outF, 0.02));
    return this.g.op('Add', [this.g.op('MatMul', [x, w]), b]);
  }

  /** Same-padded k×k convolution over NCHW. */
  conv(name: string, x: string, inC: number, outC: number, k: number, gain = 1): string {
    const fanIn = inC * k * k;
    const w = this.g.floats(`${name}.weight`, [outC, inC, k, k], this.w.layer(`${name}.weight`, outC * fanIn, fanIn, gain));
    const b = this.g.floats(`${name}.bias`, [outC], this.w.uniform(`${name}.bias`, outC, 0.02));
    const p = (k - 1) / 2;
    return this.g.op('Conv', [x, w, b], { pads: attr.ints([p, p, p, p]) });
  }

  /** LayerNorm over the last axis with unit scale and zero shift. */
  layerNorm(name: string, x: string, features: number): string {
    const scale = this.g.floats(`${name}.weight`, [features], new Float32Array(features).fill(1));
    const shift = this.g.floats(`${name}.bias`, [features], new Float32Array(features));
    return this.g.op('LayerNormalization', [x, scale, shift], { axis: attr.int(-1), epsilon: attr.float(1e-5) });
  }
}

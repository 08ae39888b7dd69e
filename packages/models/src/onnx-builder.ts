/**
 * A small ONNX graph builder over the generated protobuf-es subset of onnx.proto.
 *
 * It exists so the project can write its tiny test models (the built-in CLIP,
 * the ×4 upscaler) from TypeScript, deterministically, without Python. It only
 * knows what those models need: float/int64 initializers, nodes with scalar and
 * list attributes, and graph inputs/outputs with fixed or symbolic dimensions.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { onnx } from '@nightshift/proto';

const AttrType = onnx.AttributeProto_AttributeType;
const { ModelProtoSchema } = onnx;
type ModelProto = onnx.ModelProto;

/** ONNX element types (the enum value and its type, like the generated enum). */
export const DataType = onnx.TensorProto_DataType;
export type DataType = onnx.TensorProto_DataType;

/** A dimension: a fixed size, or a symbolic name such as "batch". */
export type Dim = number | string;

/** An attribute value with its ONNX type made explicit (JS numbers cannot tell 1 from 1.0). */
export type AttrValue =
  | { kind: 'int'; value: number | bigint }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: readonly (number | bigint)[] }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'string'; value: string };

export const attr = {
  int: (value: number | bigint): AttrValue => ({ kind: 'int', value }),
  float: (value: number): AttrValue => ({ kind: 'float', value }),
  ints: (value: readonly (number | bigint)[]): AttrValue => ({ kind: 'ints', value }),
  floats: (value: readonly number[]): AttrValue => ({ kind: 'floats', value }),
  string: (value: string): AttrValue => ({ kind: 'string', value }),
};

type AttributeInit = MessageInitShape<typeof onnx.AttributeProtoSchema>;
type TensorInit = MessageInitShape<typeof onnx.TensorProtoSchema>;
type NodeInit = MessageInitShape<typeof onnx.NodeProtoSchema>;
type ValueInfoInit = MessageInitShape<typeof onnx.ValueInfoProtoSchema>;

function toAttribute(name: string, v: AttrValue): AttributeInit {
  switch (v.kind) {
    // The subset proto is proto3, so a scalar equal to 0 is not written at all;
    // the `type` field still says INT/FLOAT and onnxruntime (checked with 1.30)
    // then reads the value as 0, which is what was meant.
    case 'int':
      return { name, type: AttrType.INT, i: BigInt(v.value) };
    case 'float':
      return { name, type: AttrType.FLOAT, f: v.value };
    case 'ints':
      return { name, type: AttrType.INTS, ints: v.value.map((x) => BigInt(x)) };
    case 'floats':
      return { name, type: AttrType.FLOATS, floats: [...v.value] };
    case 'string':
      return { name, type: AttrType.STRING, s: new TextEncoder().encode(v.value) };
  }
}

function shapeOf(dims: readonly Dim[]) {
  return {
    dim: dims.map((d) =>
      typeof d === 'number' ? { value: { case: 'dimValue' as const, value: BigInt(d) } } : { value: { case: 'dimParam' as const, value: d } },
    ),
  };
}

function count(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Little-endian bytes, as ONNX raw_data requires, independent of the host. */
function float32Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}

function int64Bytes(values: ArrayLike<number | bigint>): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setBigInt64(i * 8, BigInt(values[i]!), true);
  return out;
}

export interface ModelOptions {
  /** ONNX IR version; 8 is read by every onnxruntime from 1.10 on. */
  irVersion?: number;
  /** Default-domain opset. */
  opset?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
}

/**
 * Accumulates one graph. Node outputs get stable generated names
 * (`<prefix>_<n>`), so the same build steps always give the same bytes.
 */
export class GraphBuilder {
  private readonly nodes: NodeInit[] = [];
  private readonly initializers: TensorInit[] = [];
  private readonly inputs: ValueInfoInit[] = [];
  private readonly outputs: ValueInfoInit[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`duplicate value name in graph ${this.name}: ${name}`);
    this.names.add(name);
    return name;
  }

  /** A fresh value name that nothing else in the graph uses. */
  fresh(prefix = 't'): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.names.has(name));
    return name;
  }

  input(name: string, elemType: DataType, dims: readonly Dim[]): string {
    this.inputs.push({ name: this.claim(name), type: { value: { case: 'tensorType', value: { elemType, shape: shapeOf(dims) } } } });
    return name;
  }

  /** Declares a graph output; `name` must be produced by some node. */
  output(name: string, elemType: DataType, dims: readonly Dim[]): void {
    this.outputs.push({ name, type: { value: { case: 'tensorType', value: { elemType, shape: shapeOf(dims) } } } });
  }

  /** A float32 initializer (constant weight). Returns its name. */
  floats(name: string, dims: readonly number[], values: ArrayLike<number>): string {
    if (values.length !== count(dims)) throw new Error(`initializer ${name}: ${values.length} values for dims [${dims.join(',')}]`);
    this.initializers.push({
      name: this.claim(name),
      dims: dims.map((d) => BigInt(d)),
      dataType: DataType.FLOAT,
      rawData: float32Bytes(values),
    });
    return name;
  }

  /** An int64 initializer (shapes, axes, indices). Returns its name. */
  int64s(name: string, dims: readonly number[], values: ArrayLike<number | bigint>): string {
    if (values.length !== count(dims)) throw new Error(`initializer ${name}: ${values.length} values for dims [${dims.join(',')}]`);
    this.initializers.push({
      name: this.claim(name),
      dims: dims.map((d) => BigInt(d)),
      dataType: DataType.INT64,
      rawData: int64Bytes(values),
    });
    return name;
  }

  /** Shorthand for a scalar float constant (shape []), handy for broadcasting. */
  scalar(value: number, name = this.fresh('c')): string {
    return this.floats(name, [], [value]);
  }

  /** Adds a node with explicit output names; returns them. */
  node(opType: string, inputs: readonly string[], outputs: readonly string[], attrs: Record<string, AttrValue> = {}): string[] {
    for (const o of outputs) this.claim(o);
    this.nodes.push({
      opType,
      name: `${opType}_${this.nodes.length}`,
      input: [...inputs],
      output: [...outputs],
      // Sorted so attribute order never depends on object-literal order.
      attribute: Object.keys(attrs)
        .sort()
        .map((k) => toAttribute(k, attrs[k]!)),
    });
    return [...outputs];
  }

  /** Adds a single-output node and returns the output name (generated unless given). */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, outName?: string): string {
    const out = outName ?? this.fresh(opType.toLowerCase());
    this.node(opType, inputs, [out], attrs);
    return out;
  }

  toModel(options: ModelOptions = {}): ModelProto {
    return create(ModelProtoSchema, {
      irVersion: BigInt(options.irVersion ?? 8),
      producerName: options.producerName ?? 'nightshift',
      producerVersion: options.producerVersion ?? '',
      docString: options.docString ?? '',
      opsetImport: [{ domain: '', version: BigInt(options.opset ?? 17) }],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
  }

  /** Serialised model bytes, ready for onnxruntime or a file. */
  toBytes(options: ModelOptions = {}): Uint8Array {
    return toBinary(ModelProtoSchema, this.toModel(options));
  }
}

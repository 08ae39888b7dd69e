/**
 * What a diffusers ONNX export's sessions must look like, checked against
 * onnxruntime's input/output metadata when the model loads, so that a wrong
 * or unsupported export fails then, naming the file and tensor, instead of
 * deep inside a render. It also records what the wrappers must feed: each
 * float input's precision (fp32 or fp16) and the timestep's dtype and rank,
 * which differ between exporters.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { SdModelError } from './sd-folder.js';

type Meta = InferenceSession.ValueMetadata;
type TensorMeta = Extract<Meta, { isTensor: true }>;

export type FloatType = 'float32' | 'float16';
const FLOATS: readonly Tensor.Type[] = ['float32', 'float16'];

/** The subset of a session the checks read (a real InferenceSession has it). */
export interface SessionMetadata {
  readonly inputMetadata: readonly Meta[];
  readonly outputMetadata: readonly Meta[];
}

interface Expect {
  types: readonly Tensor.Type[];
  /** Allowed ranks. */
  ranks: readonly number[];
  /** Human form of the expected shape, for messages. */
  shape: string;
  /** Fixed sizes by axis that the tensor must have where its own size is fixed. */
  fixed?: Readonly<Record<number, number>>;
}

function describe(m: Meta): string {
  if (!m.isTensor) return 'not a tensor';
  return `${m.type} [${m.shape.join(', ')}]`;
}

function list(metas: readonly Meta[]): string {
  return metas.map((m) => `"${m.name}": ${describe(m)}`).join('; ') || 'none';
}

export class IoChecker {
  constructor(
    private readonly folder: string,
    private readonly file: string,
    private readonly session: SessionMetadata,
  ) {}

  private fail(message: string): never {
    throw new SdModelError(message, this.folder, this.file);
  }

  private check(kind: 'input' | 'output', name: string, want: Expect): TensorMeta {
    const metas = kind === 'input' ? this.session.inputMetadata : this.session.outputMetadata;
    const m = metas.find((x) => x.name === name);
    if (!m) this.fail(`no ${kind} named "${name}" (expected ${want.types.join(' or ')} ${want.shape}); the model's ${kind}s: ${list(metas)}`);
    const expected = `expected ${want.types.join(' or ')} ${want.shape}, found ${describe(m)}`;
    if (!m.isTensor || !want.types.includes(m.type)) this.fail(`${kind} "${name}": ${expected}`);
    // A shape of [] can also mean "not declared"; accept it wherever a rank-0 tensor would be acceptable.
    if (!want.ranks.includes(m.shape.length)) this.fail(`${kind} "${name}": ${expected}`);
    for (const [axis, size] of Object.entries(want.fixed ?? {})) {
      const d = m.shape[Number(axis)];
      if (typeof d === 'number' && d !== size) this.fail(`${kind} "${name}": ${expected}`);
    }
    return m;
  }

  input(name: string, want: Expect): TensorMeta {
    return this.check('input', name, want);
  }

  output(name: string, want: Expect): TensorMeta {
    return this.check('output', name, want);
  }

  /** The first of `names` that is an output, or undefined. */
  hasOutput(...names: string[]): string | undefined {
    return names.find((n) => this.session.outputMetadata.some((m) => m.name === n));
  }

  hasInput(name: string): boolean {
    return this.session.inputMetadata.some((m) => m.name === name);
  }

  /** Inputs the wrappers would not feed: a model that needs them cannot run here. */
  onlyInputs(known: readonly string[], hint: string): void {
    const extra = this.session.inputMetadata.filter((m) => !known.includes(m.name));
    if (extra.length > 0) this.fail(`unsupported input${extra.length > 1 ? 's' : ''} ${list(extra)} (${hint})`);
  }
}

const float = (m: TensorMeta): FloatType => (m.type === 'float16' ? 'float16' : 'float32');
const fixedSize = (m: TensorMeta, axis: number): number | undefined => {
  const d = m.shape[axis];
  return typeof d === 'number' ? d : undefined;
};

export interface TextEncoderIo {
  idsType: 'int32' | 'int64';
  /** Fixed sequence length when the export pins it (77), else undefined. */
  seqLen: number | undefined;
  hiddenType: FloatType;
  /** Hidden size when the export declares it. */
  hidden: number | undefined;
  pooled: string | undefined;
}

export function checkTextEncoder(c: IoChecker, maxTokens: number): TextEncoderIo {
  const ids = c.input('input_ids', { types: ['int32', 'int64'], ranks: [2], shape: `[batch, ${maxTokens}]`, fixed: { 1: maxTokens } });
  c.onlyInputs(['input_ids'], 'a Stable Diffusion text encoder takes input_ids only');
  const h = c.output('last_hidden_state', { types: FLOATS, ranks: [3], shape: `[batch, ${maxTokens}, hidden]`, fixed: { 1: maxTokens } });
  return {
    idsType: ids.type === 'int32' ? 'int32' : 'int64',
    seqLen: fixedSize(ids, 1),
    hiddenType: float(h),
    hidden: fixedSize(h, 2),
    pooled: c.hasOutput('pooler_output', 'text_embeds'),
  };
}

export interface UnetIo {
  sampleType: FloatType;
  hiddenType: FloatType;
  /** How the timestep is fed: its dtype and whether it is rank 0 (a scalar) or rank 1 (length 1). */
  timestepType: 'float32' | 'float16' | 'int64' | 'int32';
  timestepRank: 0 | 1;
  /** LCM-distilled UNets take a guidance embedding [batch, d]. */
  timestepCond: { type: FloatType; dim: number | undefined } | undefined;
  outType: FloatType;
}

export function checkUnet(c: IoChecker, latentChannels: number, hidden: number | undefined): UnetIo {
  const sample = c.input('sample', { types: FLOATS, ranks: [4], shape: `[batch, ${latentChannels}, height, width]`, fixed: { 1: latentChannels } });
  const t = c.input('timestep', { types: ['float32', 'float16', 'int64', 'int32'], ranks: [0, 1], shape: '[] or [1] or [batch]' });
  const h = c.input('encoder_hidden_states', {
    types: FLOATS,
    ranks: [3],
    shape: `[batch, sequence, ${hidden ?? 'hidden'}]`,
    ...(hidden !== undefined ? { fixed: { 2: hidden } } : {}),
  });
  const cond = c.hasInput('timestep_cond') ? c.input('timestep_cond', { types: FLOATS, ranks: [2], shape: '[batch, dim]' }) : undefined;
  c.onlyInputs(['sample', 'timestep', 'encoder_hidden_states', 'timestep_cond'], 'SD 1.x/2.x UNets only; SDXL-style added conditions are not supported');
  const out = c.output('out_sample', { types: FLOATS, ranks: [4], shape: `[batch, ${latentChannels}, height, width]`, fixed: { 1: latentChannels } });
  return {
    sampleType: float(sample),
    hiddenType: float(h),
    timestepType: t.type as UnetIo['timestepType'],
    timestepRank: t.shape.length === 0 ? 0 : 1,
    timestepCond: cond ? { type: float(cond), dim: fixedSize(cond, 1) } : undefined,
    outType: float(out),
  };
}

export interface VaeDecoderIo {
  inType: FloatType;
}

export function checkVaeDecoder(c: IoChecker, latentChannels: number): VaeDecoderIo {
  const z = c.input('latent_sample', { types: FLOATS, ranks: [4], shape: `[batch, ${latentChannels}, height/8, width/8]`, fixed: { 1: latentChannels } });
  c.onlyInputs(['latent_sample'], 'a VAE decoder takes latent_sample only');
  c.output('sample', { types: FLOATS, ranks: [4], shape: '[batch, 3, height, width]', fixed: { 1: 3 } });
  return { inType: float(z) };
}

export interface VaeEncoderIo {
  inType: FloatType;
  /** latent_sample: sampled in the graph; latent_parameters: mean and log-variance stacked on axis 1. */
  output: 'latent_sample' | 'latent_parameters';
}

export function checkVaeEncoder(c: IoChecker, latentChannels: number): VaeEncoderIo {
  const x = c.input('sample', { types: FLOATS, ranks: [4], shape: '[batch, 3, height, width]', fixed: { 1: 3 } });
  c.onlyInputs(['sample'], 'a VAE encoder takes sample only');
  const kind = c.hasOutput('latent_sample', 'latent_parameters') ?? 'latent_sample';
  const channels = kind === 'latent_parameters' ? 2 * latentChannels : latentChannels;
  c.output(kind, { types: FLOATS, ranks: [4], shape: `[batch, ${channels}, height/8, width/8]`, fixed: { 1: channels } });
  return { inType: float(x), output: kind === 'latent_parameters' ? 'latent_parameters' : 'latent_sample' };
}

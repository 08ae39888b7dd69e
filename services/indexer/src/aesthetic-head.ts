/**
 * An aesthetic head: an ONNX model that takes CLIP image embeddings
 * [batch, D] and gives one score per embedding ([batch, 1] or [batch]), like
 * the LAION aesthetic predictor (an MLP over the embedding) exported to ONNX.
 * Loaded with onnxruntime-node; its input width is checked against the CLIP
 * model's dimension when it is loaded, so a head trained for another CLIP
 * fails at start with a message that says so, instead of scoring nonsense.
 *
 * The head's id (file name and a hash of its bytes) is stored with every
 * score, so a replaced head is a new head and the old scores are redone.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import * as ort from 'onnxruntime-node';

/** A LAION head is ~4 MB; anything far beyond this is not a head over an embedding. */
export const MAX_HEAD_BYTES = 256 * 1024 * 1024;
/** Rows per forward pass: bounds the memory one pass takes. */
const ROWS_PER_RUN = 1024;

export class AestheticHeadError extends Error {}

export interface AestheticHead {
  /** `<file name>@<sha256 of its bytes, 12 hex>`: recorded with each score. */
  readonly id: string;
  /** The embedding width it takes. */
  readonly width: number;
  /** One finite score per vector, in order. */
  score(vectors: readonly Float32Array[]): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export interface HeadOptions {
  /** What to call the head in errors (the setting it came from). */
  label?: string;
  /** onnxruntime intra-op threads (default 1: the indexer's forward passes share the event loop's core). */
  threads?: number;
}

/** Loads `file` and checks that it takes `dim`-wide embeddings and gives one score each. */
export async function loadAestheticHead(file: string, dim: number, opts: HeadOptions = {}): Promise<AestheticHead> {
  const label = opts.label ?? file;
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new AestheticHeadError(`aesthetic head ${label}: no such file (expected an .onnx file)`);
  if (info.size > MAX_HEAD_BYTES) throw new AestheticHeadError(`aesthetic head ${label}: ${info.size} bytes, more than the ${MAX_HEAD_BYTES} an aesthetic head may have`);
  const bytes = await readFile(file);
  const id = `${basename(file).replace(/\.onnx$/, '')}@${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}`;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      logSeverityLevel: 3,
      intraOpNumThreads: opts.threads ?? 1,
      interOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
  } catch (err) {
    throw new AestheticHeadError(`aesthetic head ${label}: not a model onnxruntime can load: ${(err as Error).message}`);
  }
  try {
    const width = checkInterface(session, dim, label);
    const head = new OnnxHead(session, id, width, label);
    // One probe pass: catches heads whose graph disagrees with its declared shapes, and outputs of more than one value per row.
    await head.score([new Float32Array(dim)]).catch((err: unknown) => {
      if (err instanceof AestheticHeadError) throw err;
      throw new AestheticHeadError(`aesthetic head ${label} cannot score a ${dim}-wide embedding (the CLIP model's width): ${(err as Error).message}`);
    });
    return head;
  } catch (err) {
    await session.release();
    throw err instanceof AestheticHeadError ? err : new AestheticHeadError(`aesthetic head ${label}: ${(err as Error).message}`);
  }
}

/** One float input of rank 2 whose width (when fixed) is `dim`; returns the width. */
function checkInterface(session: ort.InferenceSession, dim: number, label: string): number {
  const inputs = session.inputMetadata;
  if (inputs.length !== 1) throw new AestheticHeadError(`aesthetic head ${label}: takes ${inputs.length} inputs (${session.inputNames.join(', ')}); expected one, the image embedding [batch, ${dim}]`);
  const input = inputs[0]!;
  if (!input.isTensor || input.type !== 'float32') throw new AestheticHeadError(`aesthetic head ${label}: input ${input.name} is not a float32 tensor; expected the image embedding [batch, ${dim}]`);
  if (input.shape.length !== 2) throw new AestheticHeadError(`aesthetic head ${label}: input ${input.name} has shape [${input.shape.join(', ')}]; expected [batch, ${dim}]`);
  const width = input.shape[1];
  if (typeof width === 'number' && width > 0 && width !== dim) {
    throw new AestheticHeadError(
      `aesthetic head ${label} takes ${width}-wide embeddings but the CLIP model makes ${dim}-wide ones: ` +
        'a head only fits the CLIP model it was trained on (set NIGHTSHIFT_CLIP_MODEL to that model, or export a head for this one)',
    );
  }
  if (session.outputNames.length < 1) throw new AestheticHeadError(`aesthetic head ${label}: has no output`);
  return dim;
}

class OnnxHead implements AestheticHead {
  private readonly inputName: string;
  private readonly outputName: string;

  constructor(
    private readonly session: ort.InferenceSession,
    readonly id: string,
    readonly width: number,
    private readonly label: string,
  ) {
    this.inputName = session.inputNames[0]!;
    this.outputName = session.outputNames[0]!;
  }

  async score(vectors: readonly Float32Array[]): Promise<Float32Array> {
    const out = new Float32Array(vectors.length);
    for (let start = 0; start < vectors.length; start += ROWS_PER_RUN) {
      const rows = vectors.slice(start, start + ROWS_PER_RUN);
      const data = new Float32Array(rows.length * this.width);
      rows.forEach((v, i) => {
        if (v.length !== this.width) throw new AestheticHeadError(`aesthetic head ${this.label}: an embedding of width ${v.length}, expected ${this.width}`);
        data.set(v, i * this.width);
      });
      const result = await this.session.run({ [this.inputName]: new ort.Tensor('float32', data, [rows.length, this.width]) });
      const t = result[this.outputName]!;
      if (t.type !== 'float32' || t.data.length !== rows.length) {
        throw new AestheticHeadError(`aesthetic head ${this.label}: output ${this.outputName} holds ${t.data.length} ${t.type} values for ${rows.length} embeddings; expected one score each`);
      }
      const scores = t.data as Float32Array;
      for (let i = 0; i < rows.length; i++) {
        if (!Number.isFinite(scores[i]!)) throw new AestheticHeadError(`aesthetic head ${this.label}: a score that is not a finite number (${scores[i]})`);
      }
      out.set(scores, start);
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

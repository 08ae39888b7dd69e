/**
 * How an image was made, for reproducing it later: the `nightshift` iTXt
 * chunk every rendered PNG carries beside A1111's `parameters` (which holds
 * the prompt and settings). JSON: the backend and model, the model's hash,
 * the GPU and driver, and the versions of the software that rendered it.
 *
 * Only what is the same for the same software on the same kind of GPU goes
 * in: never the node's name, the time, or anything measured (render time,
 * energy). Two such nodes rendering one renderKey write the same bytes,
 * which is how a re-render is checked (and what storage's idempotence
 * relies on). A render that ran on the CPU names no GPU or driver, so its
 * bytes are the same on nodes with the same software whatever their cards.
 */
import { addPngTextChunk, readPngTextChunks } from './png-text.js';

export const PROVENANCE_KEYWORD = 'nightshift';
export const PROVENANCE_FORMAT = 'nightshift.provenance/1';

export interface Provenance {
  backend: string;
  model: string;
  /** The registry model's sha256 (JobAssignment.model_hash), else the backend's A1111 short hash; null when unknown. */
  modelHash: string | null;
  /** As nvidia-smi names it ("NVIDIA H200"); null where nvidia-smi is absent or the render ran on the CPU. */
  gpu: string | null;
  driver: string | null;
  /** Software versions by name: node, nightshift, onnxruntime-node, sharp, vips… */
  versions: Record<string, string>;
}

/** The chunk's JSON, keys in one fixed order (versions sorted), so equal provenance is equal bytes. */
export function formatProvenance(p: Provenance): string {
  const versions = Object.fromEntries(Object.entries(p.versions).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify({ format: PROVENANCE_FORMAT, backend: p.backend, model: p.model, modelHash: p.modelHash, gpu: p.gpu, driver: p.driver, versions });
}

/** A copy of `png` with the provenance chunk (iTXt, replacing any earlier one). */
export function addProvenanceChunk(png: Buffer, p: Provenance): Buffer {
  return addPngTextChunk(png, PROVENANCE_KEYWORD, formatProvenance(p), { itxt: true });
}

/** The provenance a PNG carries; undefined when it has none or it is not ours. */
export function readProvenance(png: Buffer): Provenance | undefined {
  const text = readPngTextChunks(png)[PROVENANCE_KEYWORD];
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Partial<Provenance> & { format?: unknown };
    if (v.format !== PROVENANCE_FORMAT || typeof v.backend !== 'string' || typeof v.versions !== 'object' || v.versions === null) return undefined;
    return { backend: v.backend, model: String(v.model ?? ''), modelHash: v.modelHash ?? null, gpu: v.gpu ?? null, driver: v.driver ?? null, versions: v.versions };
  } catch {
    return undefined;
  }
}

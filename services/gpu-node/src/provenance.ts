/**
 * This node's part of an image's provenance (the PNG's `nightshift` chunk,
 * @nightshift/common provenance.ts): the GPU and driver nvidia-smi names,
 * and the versions of the software that renders. Gathered once per process.
 * Only facts that are the same for the same software on the same GPU: no
 * node name, no time, nothing measured, so two such nodes write the same
 * bytes for one renderKey. A render the backend says ran on the CPU names
 * no GPU or driver (false provenance otherwise, and its bytes would differ
 * between nodes with different cards).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import type { Provenance } from '@nightshift/common';
import type { JobAssignment } from '@nightshift/proto';
import type { RenderDevice } from './backends/backend.js';
import { gpuLabel, probeGpus, type GpuIdentity } from './power-meter-gpu.js';

/** The node-wide half of a Provenance: what rendered, not what was rendered. */
export type NodeSoftware = Pick<Provenance, 'gpu' | 'driver' | 'versions'>;

const require = createRequire(import.meta.url);

/** A package's version from its package.json; undefined when it is not installed. */
function packageVersion(name: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

function ownVersion(): string | undefined {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

export function softwareOf(gpu: GpuIdentity | undefined): NodeSoftware {
  const versions: Record<string, string> = { node: process.versions.node };
  const add = (name: string, v: string | undefined) => {
    if (v) versions[name] = v;
  };
  add('nightshift', ownVersion());
  add('onnxruntime-node', packageVersion('onnxruntime-node'));
  add('sharp', sharp.versions.sharp);
  add('vips', sharp.versions.vips);
  return { gpu: gpu ? gpuLabel(gpu.names) : null, driver: gpu?.driver ?? null, versions };
}

let local: Promise<GpuIdentity | undefined> | undefined;

/** The GPUs of this process's machine, asked of nvidia-smi once (node.ts's power meter reuses the answer). */
export function localGpus(): Promise<GpuIdentity | undefined> {
  return (local ??= probeGpus(process.env));
}

let software: Promise<NodeSoftware> | undefined;

/** This process's NodeSoftware, gathered once. */
export function localSoftware(): Promise<NodeSoftware> {
  return (software ??= localGpus().then(softwareOf));
}

/**
 * A job's full provenance on this node; `modelHash`: the backend's own (A1111
 * short) hash when the job names no registry model; `device`: where the
 * backend says it rendered (RenderResult.device; unknown counts as the GPU).
 */
export function jobProvenance(
  node: NodeSoftware,
  job: Pick<JobAssignment, 'backend' | 'model' | 'modelHash'>,
  model: string,
  backendHash: string | undefined,
  device: RenderDevice | undefined,
): Provenance {
  const where = device === 'cpu' ? { gpu: null, driver: null } : {};
  return { backend: job.backend, model, modelHash: job.modelHash || backendHash || null, ...node, ...where };
}

/**
 * The worker with a power meter on a stub `nvidia-smi`: each completion
 * carries its cost (its share of the GPU's busy time, energy integrated from
 * the stub's wattage, the GPU and driver), and each PNG its provenance
 * chunk, which is the same bytes on two nodes whatever each one measured,
 * and names the GPU only where the backend rendered on it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobAssignmentSchema } from '@nightshift/proto';
import { createLogger, readPngTextChunks, readProvenance } from '@nightshift/common';
import { Worker, type Report } from './worker.js';
import type { Backend } from './backends/backend.js';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';
import { ProceduralBackend } from './backends/procedural.js';
import { PowerMeter } from './power-meter.js';
import { probeGpus } from './power-meter-gpu.js';
import { softwareOf } from './provenance.js';
import { stubNvidiaSmi } from './nvidia-smi-stub.js';

const GPU = { name: 'NVIDIA Stub 4090', driver: '550.54.14' };
type Completed = Extract<Report, { case: 'completed' }>['value'];

/**
 * Renders one job on a fresh worker ("node") whose meter's clock moves
 * `renderS` seconds during the render. `unknownDevice`: the backend does
 * not say where it rendered (as an exec generator does not).
 */
async function renderOn(nodeId: string, env: NodeJS.ProcessEnv, renderS: number, unknownDevice = false): Promise<{ done: Completed; png: Buffer }> {
  let clock = 0;
  const gpu = await probeGpus(env);
  const meter = new PowerMeter({ env, gpu, intervalMs: 50, now: () => clock });
  const procedural = new ProceduralBackend();
  const backend: Backend = {
    name: 'procedural',
    models: procedural.models,
    async render(req, onProgress, signal) {
      const { device, ...out } = await procedural.render(req, onProgress, signal);
      clock += renderS * 1_000;
      return unknownDevice ? out : { ...out, device };
    },
  };
  const stored = new Map<string, Buffer>();
  let done: Completed | undefined;
  let finished!: () => void;
  const completed = new Promise<void>((r) => (finished = r));
  const worker = new Worker({
    nodeId,
    slots: 1,
    backends: new Map([['procedural', backend]]),
    storage: { exists: async (k) => stored.has(k), put: async (k, b) => void stored.set(k, b), get: async (k) => stored.get(k)! },
    report: (r) => {
      if (r.case !== 'completed') return;
      done = r.value;
      finished();
    },
    log: createLogger('worker-test', 'silent'),
    meter,
    software: async () => softwareOf(gpu),
  });
  worker.start();
  const renderKey = 'c'.repeat(64);
  worker.assign(create(JobAssignmentSchema, { jobId: 'j1', renderKey, backend: 'procedural', model: PROCEDURAL_MODEL, paramsJson: JSON.stringify({ width: 64, height: 64, steps: 2 }), prompt: 'a lighthouse', seed: 7n }));
  await completed;
  await worker.stop();
  meter.stop();
  return { done: done!, png: stored.get(`images/${renderKey}.png`)! };
}

test('a completion carries its cost: GPU time, energy integrated from the stub wattage, GPU and driver', async () => {
  const stub = stubNvidiaSmi({ gpus: [GPU], watts: [250] });
  try {
    const { done } = await renderOn('node-a', stub.env, 2, true);
    assert.deepEqual(done.cost, { gpuMs: 2_000, energyMeasured: true, energyJoules: 500, gpuName: GPU.name, driverVersion: GPU.driver });
  } finally {
    stub.cleanup();
  }
});

test('a render the backend says ran on the CPU costs no GPU time and no GPU energy, on a node whose GPU is measured', async () => {
  const stub = stubNvidiaSmi({ gpus: [GPU], watts: [250] });
  try {
    const { done } = await renderOn('node-a', stub.env, 2);
    // Still this node's render (its GPU named, so a sweep's per-node figures keep it), measured at 0 J of GPU energy.
    assert.deepEqual(done.cost, { gpuMs: 0, energyMeasured: true, energyJoules: 0, gpuName: GPU.name, driverVersion: GPU.driver });
  } finally {
    stub.cleanup();
  }
});

test('the PNG records how it was made, with the GPU a backend rendered on; two nodes with the same software and GPU write the same bytes', async () => {
  const stub = stubNvidiaSmi({ gpus: [GPU], watts: [250] });
  try {
    const a = await renderOn('node-a', stub.env, 1, true);
    const b = await renderOn('node-b', stub.env, 3, true);
    assert.notEqual(a.done.cost?.energyJoules, b.done.cost?.energyJoules, 'the two renders measured differently');
    assert.ok(a.png.equals(b.png), 'same renderKey, same software: same bytes');
    assert.ok(readPngTextChunks(a.png).parameters?.startsWith('a lighthouse'));
    const p = readProvenance(a.png)!;
    // A backend that does not say where it rendered: the node's GPU.
    assert.deepEqual({ ...p, versions: undefined }, { backend: 'procedural', model: PROCEDURAL_MODEL, modelHash: null, gpu: GPU.name, driver: GPU.driver, versions: undefined });
    assert.equal(p.versions.node, process.versions.node);
    assert.match(p.versions.sharp ?? '', /^\d+\.\d+\.\d+/);
    assert.match(p.versions['onnxruntime-node'] ?? '', /^\d+\.\d+\.\d+/);
    assert.doesNotMatch(JSON.stringify(p), /node-a|renderMs|energy/, 'nothing of the node or of the measurement');
  } finally {
    stub.cleanup();
  }
});

test('a procedural render names no GPU: the same bytes on nodes with different GPUs, or none', async () => {
  const h200 = stubNvidiaSmi({ gpus: [{ name: 'NVIDIA H200', driver: '560.35.03' }], watts: [300] });
  const t4 = stubNvidiaSmi({ gpus: [{ name: 'NVIDIA T4', driver: '535.183.01' }], watts: [70] });
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const empty = mkdtempSync(join(tmpdir(), 'nightshift-nosmi-'));
  try {
    const pngs = [await renderOn('node-a', h200.env, 1), await renderOn('node-b', t4.env, 1), await renderOn('node-c', { ...process.env, PATH: empty }, 1)].map((r) => r.png);
    const p = readProvenance(pngs[0]!)!;
    assert.deepEqual([p.backend, p.gpu, p.driver], ['procedural', null, null], 'rendered on the CPU: no GPU, no driver');
    assert.ok(pngs[0]!.equals(pngs[1]!) && pngs[0]!.equals(pngs[2]!), 'same prompt, seed and params: same bytes whatever the GPU');
  } finally {
    h200.cleanup();
    t4.cleanup();
    rmSync(empty, { recursive: true, force: true });
  }
});

test('without nvidia-smi: the cost says not measured, and the provenance has no GPU', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const empty = mkdtempSync(join(tmpdir(), 'nightshift-nosmi-'));
  try {
    const { done, png } = await renderOn('node-c', { ...process.env, PATH: empty }, 1, true);
    assert.deepEqual(done.cost, { gpuMs: 1_000, energyMeasured: false, energyJoules: 0, gpuName: '', driverVersion: '' });
    assert.equal(readProvenance(png)?.gpu, null);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

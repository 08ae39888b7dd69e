/**
 * The worker with a power meter on a stub `nvidia-smi`: each completion
 * carries its cost (GPU time, energy integrated from the stub's wattage,
 * the GPU and driver), and each PNG its provenance chunk, which is the same
 * bytes on two nodes whatever each one measured.
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

/** Renders one job on a fresh worker ("node") whose meter's clock moves `renderS` seconds during the render. */
async function renderOn(nodeId: string, env: NodeJS.ProcessEnv, renderS: number): Promise<{ done: Completed; png: Buffer }> {
  let clock = 0;
  const gpu = await probeGpus(env);
  const meter = new PowerMeter({ env, gpu, intervalMs: 50, now: () => clock });
  const procedural = new ProceduralBackend();
  const backend: Backend = {
    name: 'procedural',
    models: procedural.models,
    async render(req, onProgress, signal) {
      const out = await procedural.render(req, onProgress, signal);
      clock += renderS * 1_000;
      return out;
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
    const { done } = await renderOn('node-a', stub.env, 2);
    assert.deepEqual(done.cost, { gpuMs: done.renderMs, energyMeasured: true, energyJoules: 500, gpuName: GPU.name, driverVersion: GPU.driver });
  } finally {
    stub.cleanup();
  }
});

test('the PNG records how it was made, and two nodes with the same software write the same bytes', async () => {
  const stub = stubNvidiaSmi({ gpus: [GPU], watts: [250] });
  try {
    const a = await renderOn('node-a', stub.env, 1);
    const b = await renderOn('node-b', stub.env, 3);
    assert.notEqual(a.done.cost?.energyJoules, b.done.cost?.energyJoules, 'the two renders measured differently');
    assert.ok(a.png.equals(b.png), 'same renderKey, same software: same bytes');
    assert.ok(readPngTextChunks(a.png).parameters?.startsWith('a lighthouse'));
    const p = readProvenance(a.png)!;
    assert.deepEqual({ ...p, versions: undefined }, { backend: 'procedural', model: PROCEDURAL_MODEL, modelHash: null, gpu: GPU.name, driver: GPU.driver, versions: undefined });
    assert.equal(p.versions.node, process.versions.node);
    assert.match(p.versions.sharp ?? '', /^\d+\.\d+\.\d+/);
    assert.match(p.versions['onnxruntime-node'] ?? '', /^\d+\.\d+\.\d+/);
    assert.doesNotMatch(JSON.stringify(p), /node-a|renderMs|energy/, 'nothing of the node or of the measurement');
  } finally {
    stub.cleanup();
  }
});

test('without nvidia-smi: the cost says not measured, and the provenance has no GPU', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const empty = mkdtempSync(join(tmpdir(), 'nightshift-nosmi-'));
  try {
    const { done, png } = await renderOn('node-c', { ...process.env, PATH: empty }, 1);
    assert.deepEqual(done.cost, { gpuMs: done.renderMs, energyMeasured: false, energyJoules: 0, gpuName: '', driverVersion: '' });
    assert.equal(readProvenance(png)?.gpu, null);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

/**
 * GPU-hours are the device's busy time: the real worker with two render
 * slots on one GPU runs two jobs that overlap (made certain by events: job
 * a waits for b to start, b ends only after a), and the jobs' gpuMs add up
 * to the time either was rendering, not to the sum of their durations. The
 * meter runs on the real clock with a stub nvidia-smi at a constant power,
 * so each job's energy is also that power times its share of the time:
 * time and energy are split alike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobAssignmentSchema } from '@nightshift/proto';
import { createLogger } from '@nightshift/common';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';
import { Worker, type Report } from './worker.js';
import type { Backend } from './backends/backend.js';
import { ProceduralBackend } from './backends/procedural.js';
import { PowerMeter } from './power-meter.js';
import { probeGpus } from './power-meter-gpu.js';
import { softwareOf } from './provenance.js';
import { stubNvidiaSmi } from './nvidia-smi-stub.js';

const WATTS = 200;
/** The meter's span opens just before the backend is called and closes just after it returns: well under a ms on any machine, besides the 0.5 ms each gpuMs is rounded by. */
const SLACK_MS = 10;
type Completed = Extract<Report, { case: 'completed' }>['value'];

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

test('two slots, two overlapping jobs: their GPU time adds up to the time the GPU was busy', { timeout: 60_000 }, async () => {
  const stub = stubNvidiaSmi({ gpus: [{ name: 'NVIDIA Stub', driver: '550.54.14' }], watts: [WATTS] });
  // settleMs: a reading late on a loaded machine must not turn into 'not measured'.
  const meter = new PowerMeter({ env: stub.env, gpu: await probeGpus(stub.env), intervalMs: 50, settleMs: 60_000, lingerMs: 60_000 });
  // Starts the sampler now: its spawn (milliseconds) would otherwise fall inside the first job's span, before the backend's own clock starts.
  meter.begin().cancel();
  const procedural = new ProceduralBackend();
  const bStarted = deferred();
  const aEnded = deferred();
  const spans = new Map<string, { start: number; end: number }>();
  const backend: Backend = {
    name: 'procedural',
    models: procedural.models,
    async render(req, onProgress, signal) {
      const start = performance.now();
      if (req.jobId === 'a') await bStarted.promise;
      else bStarted.resolve();
      // Both paint meanwhile: the GPU (as the meter sees it) is shared by two jobs for all of a's painting.
      // Standing in for a GPU renderer: where it ran is left unsaid (a CPU render costs no GPU time).
      const { device: _device, ...out } = await procedural.render(req, onProgress, signal);
      if (req.jobId === 'b') await aEnded.promise;
      spans.set(req.jobId, { start, end: performance.now() });
      if (req.jobId === 'a') aEnded.resolve();
      return out;
    },
  };
  const done = new Map<string, Completed>();
  const allDone = deferred();
  const stored = new Map<string, Buffer>();
  const worker = new Worker({
    nodeId: 'n',
    slots: 2,
    backends: new Map([['procedural', backend]]),
    storage: { exists: async (k) => stored.has(k), put: async (k, b) => void stored.set(k, b), get: async (k) => stored.get(k)! },
    report: (r) => {
      if (r.case === 'failed') assert.fail(`${r.value.jobId} failed: ${r.value.error}`);
      if (r.case !== 'completed') return;
      done.set(r.value.jobId, r.value);
      if (done.size === 2) allDone.resolve();
    },
    log: createLogger('slots-test', 'silent'),
    meter,
    software: async () => softwareOf(undefined),
  });
  try {
    worker.start();
    for (const [jobId, seed] of [['a', 1n], ['b', 2n]] as const) {
      const renderKey = seed.toString(16).padStart(64, '0');
      worker.assign(create(JobAssignmentSchema, { jobId, renderKey, backend: 'procedural', model: PROCEDURAL_MODEL, paramsJson: JSON.stringify({ width: 512, height: 512, steps: 8 }), prompt: 'a red circle', seed }));
    }
    await allDone.promise;
    const a = spans.get('a')!;
    const b = spans.get('b')!;
    // b ends last (it waits for a), and both run from the later start to a's end: one busy stretch.
    const busy = b.end - Math.min(a.start, b.start);
    const overlap = a.end - Math.max(a.start, b.start);
    const durations = a.end - a.start + (b.end - b.start);
    assert.ok(overlap > 4 * SLACK_MS, `the jobs overlapped (${overlap.toFixed(1)} ms)`);
    const costs = [done.get('a')!.cost!, done.get('b')!.cost!];
    const gpuMs = costs[0]!.gpuMs + costs[1]!.gpuMs;
    assert.ok(Math.abs(gpuMs - busy) <= SLACK_MS, `GPU time ${gpuMs} ms is the busy time ${busy.toFixed(1)} ms, not the ${durations.toFixed(1)} ms the jobs lasted`);
    // Each job's render time is still its own latency.
    assert.ok(done.get('a')!.renderMs + done.get('b')!.renderMs >= durations - 2);
    for (const c of costs) {
      assert.ok(c.energyMeasured, 'measured');
      // Constant power, split alike: energy is the power times the job's share of the time (its gpuMs, rounded by ≤ 0.5 ms).
      assert.ok(Math.abs(c.energyJoules - (WATTS * c.gpuMs) / 1000) <= (WATTS * 0.5) / 1000 + 1e-9, `${c.energyJoules} J for ${c.gpuMs} ms at ${WATTS} W`);
    }
  } finally {
    await worker.stop();
    meter.stop();
    stub.cleanup();
  }
});

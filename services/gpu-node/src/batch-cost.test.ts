/**
 * What a params.batch costs: a batch of n jobs rendered in one renderBatch
 * call by the real worker, real onnx backend and real power meter (on the
 * stub nvidia-smi) reports GPU time and energy that add up to the call's,
 * not n times its duration. The meter's clock is the test's: it moves a
 * fixed time during each call, so the GPU time and energy expected are exact.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobAssignmentSchema, type JobAssignment } from '@nightshift/proto';
import { createLogger } from '@nightshift/common';
import { tempDir } from '@nightshift/devfarm';
import { TINY_SD_NAME } from '@nightshift/models';
import { Worker, type Report } from './worker.js';
import { OnnxBackend } from './backends/onnx.js';
import type { Backend } from './backends/backend.js';
import { batchMembers, type BatchingBackend } from './batch-render.js';
import { RenderFailure, type RenderRequest } from './backends/backend.js';
import { PowerMeter } from './power-meter.js';
import { probeGpus } from './power-meter-gpu.js';
import { stubNvidiaSmi } from './nvidia-smi-stub.js';

const WATTS = 250;
const PARAMS = { width: 64, height: 64, steps: 3, guidance: 5, batch: 4, sampler: 'euler_a' };
type Completed = Extract<Report, { case: 'completed' }>['value'];

let tmp: ReturnType<typeof tempDir>;
let onnx: OnnxBackend;
before(() => {
  tmp = tempDir('nightshift-batch-cost-');
  onnx = new OnnxBackend({ models: {}, dataDir: tmp.dir, threads: 1 });
});
after(async () => {
  await onnx?.close();
  tmp?.cleanup();
});

function job(seed: number): JobAssignment {
  const renderKey = seed.toString(16).padStart(64, '0');
  return create(JobAssignmentSchema, { jobId: `j${seed}`, renderKey, backend: 'onnx', kind: 'render', model: TINY_SD_NAME, prompt: 'a red fox', seed: BigInt(seed), paramsJson: JSON.stringify(PARAMS) });
}

interface Call {
  jobIds: string[];
  wallMs: number;
  /** Seconds the meter's clock moved during the call. */
  clockS: number;
}

test('a batch of n counts its wall time and energy once, shared among its jobs', { timeout: 180_000 }, async () => {
  const stub = stubNvidiaSmi({ gpus: [{ name: 'NVIDIA Stub', driver: '550.54.14' }], watts: [WATTS] });
  let clock = 0;
  // settleMs: a reading late on a loaded machine must not turn into 'not measured'.
  const meter = new PowerMeter({ env: stub.env, gpu: await probeGpus(stub.env), intervalMs: 50, settleMs: 60_000, now: () => clock });
  const calls: Call[] = [];
  /** The real backend; each call is timed, and moves the meter's clock by a second per job in it (a known energy). */
  const timed = async <T>(jobIds: string[], call: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const out = await call();
    const wallMs = performance.now() - t0;
    clock += jobIds.length * 1_000;
    calls.push({ jobIds, wallMs, clockS: jobIds.length });
    return out;
  };
  const gpuLike = <R extends { device?: unknown }>({ device: _device, ...out }: R): Omit<R, 'device'> => out;
  const backend: BatchingBackend = {
    name: onnx.name,
    models: onnx.models,
    // Standing in for a GPU backend: where it ran is left unsaid (a CPU render would cost no GPU time at all).
    render: (req, onProgress, signal) => timed([req.jobId], async () => gpuLike(await onnx.render(req, onProgress, signal))),
    renderBatch: (reqs, onProgress, signal) => timed(reqs.map((r) => r.jobId), async () => (await onnx.renderBatch(reqs, onProgress, signal)).map(gpuLike)),
  };
  const jobs = [job(1), job(2), job(3), job(4), job(5)];
  const done = new Map<string, Completed>();
  let finished!: () => void;
  const allDone = new Promise<void>((r) => (finished = r));
  const worker = new Worker({
    nodeId: 'n',
    slots: 1,
    backends: new Map<string, Backend>([['onnx', backend]]),
    storage: (() => {
      const stored = new Map<string, Buffer>();
      return { exists: async (k: string) => stored.has(k), put: async (k: string, b: Buffer) => void stored.set(k, b), get: async (k: string) => stored.get(k)! };
    })(),
    report: (r) => {
      if (r.case === 'failed') assert.fail(`${r.value.jobId} failed: ${r.value.error}`);
      if (r.case !== 'completed') return;
      done.set(r.value.jobId, r.value);
      if (done.size === jobs.length) finished();
    },
    log: createLogger('batch-cost-test', 'silent'),
    meter,
  });
  try {
    for (const j of jobs) worker.assign(j);
    worker.start();
    await allDone;
    assert.deepEqual(calls.map((c) => c.jobIds.length), [4, 1], 'seeds 1–4 in one call, seed 5 alone');
    for (const call of calls) {
      const costs = call.jobIds.map((id) => done.get(id)!.cost!);
      const n = costs.length;
      const gpuMs = costs.reduce((a, c) => a + c.gpuMs, 0);
      assert.equal(gpuMs, call.clockS * 1_000, `call of ${n}: the jobs' GPU time adds up to the call's`);
      for (const c of costs) assert.equal(c.gpuMs, (call.clockS * 1_000) / n, `each job has 1/${n} of the time`);
      assert.ok(costs.every((c) => c.energyMeasured), 'every job measured');
      const joules = costs.reduce((a, c) => a + c.energyJoules, 0);
      assert.ok(Math.abs(joules - WATTS * call.clockS) < 1e-6, `call of ${n}: the jobs' energy ${joules} J is the call's ${WATTS * call.clockS} J`);
      // Shared equally: each job's power (its energy over its GPU time) is the call's.
      for (const c of costs) assert.ok(Math.abs(c.energyJoules - (WATTS * call.clockS) / n) < 1e-6, `each job has 1/${n} of the energy`);
    }
    // The job's render time stays its latency (the coordinator's straggler and placement rules read it): the whole call.
    const batched = calls[0]!;
    for (const id of batched.jobIds) assert.ok(done.get(id)!.renderMs >= batched.wallMs - 1, `${id}: renderMs is the call's wall time`);
  } finally {
    await worker.stop();
    meter.stop();
    stub.cleanup();
  }
});

test('a batch that runs out of memory: its members, rendered one at a time, each count their own call; the failed call counts for none', { timeout: 60_000 }, async () => {
  const stub = stubNvidiaSmi({ gpus: [{ name: 'NVIDIA Stub', driver: '550.54.14' }], watts: [WATTS] });
  let clock = 0;
  const meter = new PowerMeter({ env: stub.env, gpu: await probeGpus(stub.env), intervalMs: 50, settleMs: 60_000, now: () => clock });
  const calls: number[] = [];
  // Seconds on the meter's clock: the failed batch of 3 takes 5 s, each image alone 1, 2 and 3 s.
  const oom: BatchingBackend = {
    name: 'oom',
    models: ['m'],
    render: async (req) => {
      calls.push(1);
      clock += req.seed * 1_000;
      return { png: Buffer.from([req.seed]) };
    },
    renderBatch: async (reqs) => {
      calls.push(reqs.length);
      clock += 5_000;
      throw new RenderFailure('CUDA out of memory', '', true);
    },
  };
  const req = (seed: number): RenderRequest => ({ jobId: `j${seed}`, renderKey: 'rk', kind: 'render', prompt: 'p', seed, model: 'm', params: { width: 64, height: 64, steps: 1 } });
  try {
    const members = batchMembers(oom, 3, meter);
    assert.equal(members[0]!.share(), undefined, 'no share before the render');
    const results = await Promise.all(members.map((m, k) => m.render(req(k + 1), () => {}, new AbortController().signal)));
    assert.deepEqual(calls, [3, 1, 1, 1]);
    assert.deepEqual(results.map((r) => r.png[0]), [1, 2, 3]);
    const costs = await Promise.all(members.map((m) => m.share()!.cost));
    assert.deepEqual(costs.map((e) => [e.gpuMs, e.energyMeasured, e.energyJoules]), [[1_000, true, WATTS], [2_000, true, 2 * WATTS], [3_000, true, 3 * WATTS]], 'each its own call, whole; the failed batch nobody\'s');
  } finally {
    meter.stop();
    stub.cleanup();
  }
});

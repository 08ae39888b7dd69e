/**
 * params.batch through the real worker and the real onnx backend: waiting
 * siblings render in one renderBatch call (bounded by params.batch and the
 * node's VRAM), every job is still reported and stored on its own, a stored
 * sibling withdraws, and a job's stored bytes are the same whether it was
 * rendered in a batch or alone (same renderKey ⇒ same bytes).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobAssignmentSchema, type JobAssignment } from '@nightshift/proto';
import { createLogger, imageKey, thumbKey } from '@nightshift/common';
import { tempDir } from '@nightshift/devfarm';
import { TINY_SD_NAME } from '@nightshift/models';
import { Worker, type Report } from './worker.js';
import { OnnxBackend } from './backends/onnx.js';
import type { Backend } from './backends/backend.js';
import { batchLimit, batchMembers, takeSiblings, type BatchingBackend } from './batch-render.js';
import { RenderFailure, type RenderRequest } from './backends/backend.js';

let tmp: ReturnType<typeof tempDir>;
let onnx: OnnxBackend;

const PARAMS = { width: 64, height: 64, steps: 3, guidance: 5, batch: 4, sampler: 'euler_a' };

function job(seed: number, over: { prompt?: string; kind?: string; modelHash?: string; paramsJson?: string } = {}): JobAssignment {
  const renderKey = seed.toString(16).padStart(64, '0');
  return create(JobAssignmentSchema, { jobId: `j${seed}`, renderKey, backend: 'onnx', kind: 'render', model: TINY_SD_NAME, prompt: 'a red fox', seed: BigInt(seed), paramsJson: JSON.stringify(PARAMS), ...over });
}

/** The real backend, with each call's job count written down. */
function recording(inner: OnnxBackend, calls: number[]): BatchingBackend {
  return {
    name: inner.name,
    models: inner.models,
    render: (req, onProgress, signal) => {
      calls.push(1);
      return inner.render(req, onProgress, signal);
    },
    renderBatch: (reqs, onProgress, signal) => {
      calls.push(reqs.length);
      return inner.renderBatch(reqs, onProgress, signal);
    },
  };
}

/** Runs `jobs` (all queued before the worker starts) to their reports; returns the reports and what was stored. */
async function runJobs(jobs: JobAssignment[], opts: { vramMb?: number; stored?: Map<string, Buffer> } = {}) {
  const calls: number[] = [];
  const stored = opts.stored ?? new Map<string, Buffer>();
  const reports: Report[] = [];
  let finished!: () => void;
  const allDone = new Promise<void>((r) => (finished = r));
  const ends = () => reports.filter((r) => r.case !== 'progress').length;
  const worker = new Worker({
    nodeId: 'n',
    slots: 1,
    backends: new Map<string, Backend>([['onnx', recording(onnx, calls)]]),
    storage: { exists: async (k) => stored.has(k), put: async (k, b) => void stored.set(k, b), get: async (k) => stored.get(k)! },
    report: (r) => {
      reports.push(r);
      if (r.case !== 'progress' && ends() === jobs.length) finished();
    },
    log: createLogger('batch-test', 'silent'),
    ...(opts.vramMb !== undefined ? { vramMb: opts.vramMb } : {}),
  });
  for (const j of jobs) worker.assign(j);
  worker.start();
  await allDone;
  await worker.stop();
  return { calls, stored, reports };
}

describe('params.batch on the node', { timeout: 180_000 }, () => {
  before(() => {
    tmp = tempDir('nightshift-batch-');
    onnx = new OnnxBackend({ models: {}, dataDir: tmp.dir, threads: 1 });
  });
  after(async () => {
    await onnx?.close();
    tmp?.cleanup();
  });

  test('siblings render in one call of up to params.batch; each job is completed and stored on its own, with the bytes it has alone', async () => {
    const other = job(50, { prompt: 'a blue whale' });
    const jobs = [job(1), job(2), other, job(3), job(4), job(5)];
    const batched = await runJobs(jobs);
    assert.deepEqual(batched.calls, [4, 1, 1], 'seeds 1–4 together, then the whale, then seed 5');
    const completed = batched.reports.flatMap((r) => (r.case === 'completed' ? [r.value] : []));
    assert.deepEqual(completed.map((c) => c.jobId).sort(), jobs.map((j) => j.jobId).sort());
    assert.ok(completed.every((c) => !c.skipped && c.imageBytes > 0n));
    for (const j of jobs) assert.ok(batched.stored.has(imageKey(j.renderKey)) && batched.stored.has(thumbKey(j.renderKey)), j.jobId);
    // One at a time: a card too small for two images of this size.
    const alone = await runJobs(jobs, { vramMb: 1 });
    assert.deepEqual(alone.calls, [1, 1, 1, 1, 1, 1]);
    for (const j of jobs) assert.ok(alone.stored.get(imageKey(j.renderKey))!.equals(batched.stored.get(imageKey(j.renderKey))!), `${j.jobId}: same renderKey, same bytes, batched or alone`);
    const progress = batched.reports.flatMap((r) => (r.case === 'progress' ? [r.value] : []));
    for (const j of jobs) assert.equal(progress.filter((p) => p.jobId === j.jobId).at(-1)?.step, 3, `${j.jobId} reports its own progress`);
  });

  test('the VRAM bounds the batch; an already stored sibling is skipped and the rest still share a call', async () => {
    // 64×64: 4096 + 96 MB per image (estimateVramMb), so 4,300 MB holds two.
    const bounded = await runJobs([job(1), job(2), job(3), job(4)], { vramMb: 4_300 });
    assert.deepEqual(bounded.calls, [2, 2]);
    const stored = new Map([[imageKey(job(2).renderKey), Buffer.from('x')], [thumbKey(job(2).renderKey), Buffer.from('x')]]);
    const withStored = await runJobs([job(1), job(2), job(3)], { stored });
    assert.deepEqual(withStored.calls, [2]);
    const skipped = withStored.reports.flatMap((r) => (r.case === 'completed' && r.value.skipped ? [r.value.jobId] : []));
    assert.deepEqual(skipped, ['j2']);
  });

  test('an out-of-memory batch renders its members one at a time; a member aborted alone stops alone', async () => {
    const calls: number[] = [];
    // The real backend, except that a batch of more than one runs out of memory.
    const tight: BatchingBackend = {
      ...recording(onnx, calls),
      renderBatch: (reqs) => {
        calls.push(reqs.length);
        return Promise.reject(new RenderFailure('CUDA out of memory (a batch too big for the card)', '', true));
      },
    };
    const req = (seed: number): RenderRequest => ({ jobId: `j${seed}`, renderKey: 'rk', kind: 'render', prompt: 'a red fox', seed, model: TINY_SD_NAME, params: { ...PARAMS } });
    const members = batchMembers(tight, 3);
    const stopped = new AbortController();
    const a = members[0]!.render(req(1), () => {}, new AbortController().signal);
    const b = members[1]!.render(req(2), () => {}, stopped.signal);
    stopped.abort(); // while the batch still gathers: it starts without this one
    const c = members[2]!.render(req(3), () => {}, new AbortController().signal);
    await assert.rejects(b, (e: Error) => e.name === 'AbortError');
    const [ra, rc] = await Promise.all([a, c]);
    assert.deepEqual(calls, [2, 1, 1], 'the batch of the two left, then each alone');
    const alone = await onnx.render(req(3), () => {}, new AbortController().signal);
    assert.ok(rc.png.equals(alone.png) && !ra.png.equals(rc.png));
  });

  test('a member aborted during the batch gets its AbortError; the others get their images', async () => {
    const calls: number[] = [];
    const members = batchMembers(recording(onnx, calls), 3);
    const req = (seed: number): RenderRequest => ({ jobId: `j${seed}`, renderKey: 'rk', kind: 'render', prompt: 'a red fox', seed, model: TINY_SD_NAME, params: { ...PARAMS } });
    const stopped = new AbortController();
    const [a, b, c] = members.map((m, k) => m.render(req(k + 1), () => {}, k === 1 ? stopped.signal : new AbortController().signal));
    stopped.abort();
    await assert.rejects(b!, (e: Error) => e.name === 'AbortError');
    const [ra, rc] = await Promise.all([a!, c!]);
    assert.deepEqual(calls, [3], 'one call, already under way');
    assert.ok(ra.png.length > 0 && rc.png.length > 0);
  });

  test('a batch waits for every member: one that withdraws (stored, failed early) does not hold it up', async () => {
    const calls: number[] = [];
    const members = batchMembers(recording(onnx, calls), 3);
    const req = (seed: number): RenderRequest => ({ jobId: `j${seed}`, renderKey: 'rk', kind: 'render', prompt: 'a red fox', seed, model: TINY_SD_NAME, params: { ...PARAMS } });
    const first = members[0]!.render(req(1), () => {}, new AbortController().signal);
    members[1]!.withdraw();
    members[1]!.withdraw();
    assert.deepEqual(calls, [], 'still waiting for the third');
    const third = members[2]!.render(req(3), () => {}, new AbortController().signal);
    await Promise.all([first, third]);
    assert.deepEqual(calls, [2]);
    await assert.rejects(members[0]!.render(req(1), () => {}, new AbortController().signal), /renders once/);
  });

  test('batchLimit and takeSiblings: only batching backends, only render jobs with batch > 1, siblings in queue order', () => {
    assert.equal(batchLimit(job(1), onnx, undefined), 4);
    assert.equal(batchLimit(job(1, { paramsJson: JSON.stringify({ ...PARAMS, batch: 1 }) }), onnx, undefined), 1);
    assert.equal(batchLimit(job(1), { name: 'p', models: [], render: onnx.render.bind(onnx) }, undefined), 1, 'a backend without renderBatch');
    assert.equal(batchLimit(job(1, { kind: 'upscale' }), onnx, undefined), 1);
    assert.equal(batchLimit(job(1, { paramsJson: '{' }), onnx, undefined), 1);
    const queue = [job(2), job(3, { modelHash: 'ab' }), job(4), job(5), job(6)].map((j) => ({ job: j }));
    const taken = takeSiblings(queue, { job: job(1) }, 3);
    assert.deepEqual(taken.map((h) => h.job.jobId), ['j2', 'j4']);
    assert.deepEqual(queue.map((h) => h.job.jobId), ['j3', 'j5', 'j6']);
  });
});

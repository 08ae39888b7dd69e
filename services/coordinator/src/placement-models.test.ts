/** Placement with registry models: model_unavailable failures, and explain while a model downloads or no node offers a backend. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from './db.js';
import type { NewJob } from './store.js';
import { Scheduler } from './scheduler.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { explainModelWait, explainWait, Placement, type OnlineNode } from './placement.js';
import type { NodeModelState } from './node-models.js';

const HASH = 'a'.repeat(64);
const node = (nodeId: string, models?: NodeModelState): OnlineNode => ({ nodeId, caps: { backends: ['onnx'], models: [], vramMb: 24_000 }, models });
const cache = (s: Partial<NodeModelState>): NodeModelState => ({ cached: [], loaded: '', downloads: [], bytesPerS: 0, ...s });
const unavailable = { error: 'cannot fetch models/aaaa…: S3 unreachable', logTail: '', outOfMemory: false };

function farm(online: OnlineNode[]) {
  const store = new EngineStore(openDb(':memory:'), { now: () => 1_000_000, maxAttempts: 3, blocklistAfter: 2 });
  const scheduler = new Scheduler(store.db);
  const placement = new Placement(new SqliteEngine(store), () => online);
  const jobs: NewJob[] = Array.from({ length: 2 }, (_, i) => ({ index: i, renderKey: `rk-${i}`, prompt: 'p', seed: i, params: {}, axes: {}, backend: 'onnx', model: 'castle-xl', minVramMb: 0 }));
  store.createSweep({ name: 's', spec: {}, priority: 0, backend: 'onnx', model: 'castle-xl', modelHash: HASH, modelBytes: 40 * 1024 ** 2 }, jobs, 'sw');
  const take = (n: OnlineNode) => {
    const id = scheduler.pick(n.nodeId, n.caps, 1_000_000);
    return id ? store.lease([id], n.nodeId, 30_000)[0] : undefined;
  };
  return { store, placement, take };
}

test('model_unavailable: the node is excluded for the job and the lease is not an attempt, while another node may fetch it', async () => {
  const a = node('a');
  const b = node('b');
  const { store, placement, take } = farm([a, b]);
  const job = take(a)!;
  assert.equal(job.attempts, 1);
  assert.deepEqual(await placement.modelUnavailable(job.id, { id: 'a', vramMb: 24_000 }, unavailable), { counted: false });
  const after = store.getJob(job.id)!;
  assert.equal(after.state, 'queued');
  assert.equal(after.attempts, 0, 'not counted');
  assert.match(after.error ?? '', /model unavailable on a/);
  assert.deepEqual(store.exclusions(job.id), ['a']);
  assert.equal(store.blockedNodes('sw').length, 0, 'no blocklist strike either');
  // The other job is still a's to take; this one is b's now.
  assert.notEqual(take(a)?.id, job.id);
  assert.equal(take(b)?.id, job.id);

  // On b too: no capable node is left, so now it counts like any failure (no endless cycling).
  const last = await placement.modelUnavailable(job.id, { id: 'b', vramMb: 24_000 }, unavailable);
  assert.equal(last.counted, true);
  assert.equal(store.getJob(job.id)!.attempts, 1);
});

test('explain: a job waiting for its model download says so; a floor of 0 reads as the backend alone', async () => {
  assert.equal(explainModelWait({ name: 'castle-xl', hash: HASH }, 2, [node('a', cache({ downloads: [{ hash: HASH, name: 'castle-xl', bytesDone: 10 * 1024 ** 2, bytesTotal: 40 * 1024 ** 2 }] }))]),
    '2 job(s) wait for model castle-xl (aaaaaaaaaaaa) to download: a 10.0/40.0 MB');
  assert.equal(explainModelWait({ name: 'castle-xl', hash: HASH }, 2, [node('a', cache({ cached: [HASH] })), node('b', cache({ downloads: [{ hash: HASH, name: '', bytesDone: 0, bytesTotal: 1 }] }))]), undefined, 'a node has it already');
  assert.equal(explainModelWait({ name: 'castle-xl', hash: HASH }, 2, [node('a')]), undefined, 'nobody is downloading: nothing to wait for');

  assert.equal(explainWait({ backend: 'upscale', minVramMb: 0, n: 3 }, [node('a')], new Set()),
    '3 job(s) wait: no node with backend upscale: a node runs upscales when its config (NIGHTSHIFT_NODE_CONFIG) sets upscale.model');
  assert.doesNotMatch(explainWait({ backend: 'upscale', minVramMb: 0, n: 3 }, [], new Set())!, /≥ 0 GB/);

  const downloading = node('a', cache({ downloads: [{ hash: HASH, name: 'castle-xl', bytesDone: 1024 ** 2, bytesTotal: 40 * 1024 ** 2 }] }));
  const { placement } = farm([downloading]);
  assert.deepEqual(await placement.explain('sw'), ['2 job(s) wait for model castle-xl (aaaaaaaaaaaa) to download: a 1.0/40.0 MB']);
});

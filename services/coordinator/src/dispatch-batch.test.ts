import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@nightshift/common';
import { estimateVramMb, expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { NodeDispatch, type DispatchTarget } from './node-dispatch.js';
import { jobBatch, NodeBatches } from './dispatch-batch.js';

test('jobBatch: params.batch bounded by the card, 1 without one', () => {
  assert.equal(jobBatch('{"height":64,"steps":4,"width":64}', 16_384), 1);
  assert.equal(jobBatch('{"batch":4,"height":64,"width":64}', 16_384), 4);
  assert.equal(jobBatch('{"batch":8,"height":512,"width":512}', 24_576), 3);
  assert.equal(jobBatch('{"batch":1,"height":64,"width":64}', 16_384), 1);
  assert.equal(jobBatch('{"batch":', 16_384), 1);
  const b = new NodeBatches();
  b.leased('n', '{"batch":4,"height":64,"width":64}', 16_384);
  assert.equal(b.of('n'), 4);
  b.leased('n', '{"height":64,"width":64}', 16_384);
  assert.equal(b.of('n'), 1);
});

test('a node holds whole batches: slots × prefetch × batch of a batch sweep, plain prefetch otherwise', async () => {
  const store = new EngineStore(openDb(':memory:'), { now: () => 1_000, maxAttempts: 3, blocklistAfter: 4 });
  const engine = new SqliteEngine(store);
  const add = (name: string, params: Record<string, unknown>) => {
    const spec = parseSpec({ prompts: [name], seeds: { count: 16 }, backend: 'onnx', params: { width: 64, height: 64, steps: 4, ...params } });
    const jobs = expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: estimateVramMb(64, 64) }));
    return store.createSweep({ name, spec, priority: spec.priority, backend: 'onnx', model: 'nightshift-tiny-sd' }, jobs, `sw-${name}`).id;
  };
  const batched = add('batched', { batch: 4 });
  const sent: { node: string; jobId: string }[] = [];
  const dispatch = new NodeDispatch<DispatchTarget>({
    engine,
    placement: { worthCopying: async () => false },
    models: async () => ({ state: undefined, holderCounts: new Map() }),
    log: createLogger('dispatch-batch-test', 'silent'),
    opts: { leaseMs: 30_000, prefetchPerSlot: 2, stragglerMinMs: 60_000 },
    leased: () => {},
    send: (t, msg) => sent.push({ node: t.nodeId, jobId: msg.case === 'assign' ? (msg.value.jobId ?? '') : '' }),
  });
  const node = (nodeId: string, vramMb: number): DispatchTarget => ({ nodeId, caps: { backends: ['onnx'], models: [], vramMb }, slots: 1, sleep: undefined });
  const big = node('big', 16_384);
  for (const n of [big, node('two', 4_300)]) store.upsertNode(n.nodeId, n.nodeId, { vramMb: n.caps.vramMb, backends: n.caps.backends });
  await dispatch.fill(big, { now: 1_000 });
  assert.equal(sent.length, 8, 'two batches of 4 for one slot');
  assert.deepEqual(sent.map((s) => s.jobId), Array.from({ length: 8 }, (_, i) => `${batched}-${String(i).padStart(6, "0")}`), 'siblings in index order');
  // A card that holds two images of this size: two batches of two.
  await dispatch.fill(node('two', 4_300), { now: 1_000 });
  assert.equal(sent.filter((s) => s.node === 'two').length, 4);
  // A plain sweep (the fair share picks it first now): plain prefetch once its first job is leased.
  const plainNode = node('plain', 16_384);
  store.upsertNode('plain', 'plain', { vramMb: 16_384, backends: ['onnx'] });
  add('plain', {});
  const before = sent.length;
  await dispatch.fill(plainNode, { now: 1_000 });
  assert.equal(sent.length - before, 2, 'slots × prefetch');
  assert.ok(sent.slice(before).every((s) => s.jobId.startsWith('sw-plain-')));
});

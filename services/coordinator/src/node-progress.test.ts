/** ProgressRelay: one relay at a time per node, the newest of those that came meanwhile relayed next. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobProgressSchema } from '@nightshift/proto';
import { ProgressRelay } from './node-progress.js';

const step = (n: number) => create(JobProgressSchema, { jobId: 'j', step: n, total: 100 });

test('a flood of progress from one node costs one relay at a time, and the newest is relayed last; other nodes are not held up', async () => {
  const relayed: [string, number][] = [];
  let release!: () => void;
  let gate = new Promise<void>((r) => (release = r));
  const relay = new ProgressRelay(async (nodeId, p) => {
    relayed.push([nodeId, p.step]);
    if (nodeId === 'n1') await gate;
  });
  const first = relay.offer('n1', step(1));
  assert.ok(first);
  for (let i = 2; i <= 1_000; i++) assert.equal(relay.offer('n1', step(i)), undefined, 'joins the relay under way');
  await relay.offer('n2', step(7));
  assert.deepEqual(relayed, [['n1', 1], ['n2', 7]], "n2 relayed while n1's first still runs");
  gate = Promise.resolve();
  release();
  await first;
  assert.deepEqual(relayed, [['n1', 1], ['n2', 7], ['n1', 1_000]], 'the newest waiting, once; the rest dropped');
  assert.ok(relay.offer('n1', step(1_001)), 'idle again: relayed at once');
});

test('a relay that fails does not stop the next', async () => {
  const relayed: number[] = [];
  const relay = new ProgressRelay(async (_nodeId, p) => {
    relayed.push(p.step);
    if (p.step === 1) throw new Error('boom');
  });
  await assert.rejects(relay.offer('n1', step(1))!, /boom/);
  await relay.offer('n1', step(2));
  assert.deepEqual(relayed, [1, 2]);
});

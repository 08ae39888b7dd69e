/** ProgressRelay: one relay at a time per node, the newest of those that came meanwhile relayed next. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobProgressSchema } from '@nightshift/proto';
import { PROGRESS_WAITING_JOBS, ProgressRelay } from './node-progress.js';

const step = (n: number, jobId = 'j') => create(JobProgressSchema, { jobId, step: n, total: 100 });

test('a flood of progress from one node costs one relay at a time, and the newest is relayed last; other nodes are not held up', async () => {
  const relayed: [string, number][] = [];
  let release!: () => void;
  let gate = new Promise<void>((r) => (release = r));
  const relay = new ProgressRelay(async (nodeId, p) => {
    relayed.push([`${nodeId}/${p.jobId}`, p.step]);
    if (nodeId === 'n1') await gate;
  });
  const first = relay.offer('n1', step(1));
  assert.ok(first);
  for (let i = 2; i <= 1_000; i++) assert.equal(relay.offer('n1', step(i)), undefined, 'joins the relay under way');
  relay.offer('n1', step(5, 'k'));
  for (let i = 0; i < 1_000; i++) relay.offer('n1', step(1, `forged-${i}`));
  await relay.offer('n2', step(7));
  assert.deepEqual(relayed, [['n1/j', 1], ['n2/j', 7]], "n2 relayed while n1's first still runs");
  gate = Promise.resolve();
  release();
  await first;
  assert.equal(relayed.length, 2 + 2 + (PROGRESS_WAITING_JOBS - 2), 'each waiting job once, at most PROGRESS_WAITING_JOBS of them');
  assert.deepEqual(relayed.slice(2, 4), [['n1/j', 1_000], ['n1/k', 5]], "each job's newest, in order; the rest dropped");
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

/**
 * heldCount, what a fill asks of each node: leases, straggler copies,
 * results and requeues all move it, and a copy counts for both holders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store } from './store.js';
import { ownKeys } from './store/completion.js';

test('heldCount counts leases and copies, node by node', () => {
  const store = new Store(openDb(':memory:'));
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  for (const n of nodes) store.upsertNode(n, n, { vramMb: 24_000, backends: ['procedural'] });
  const spec = parseSpec({ prompts: ['p'], seeds: { count: 20 } });
  store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'm' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 1_000 })), 'sw');
  const ids = (store.db.prepare('SELECT id FROM jobs ORDER BY idx').all() as { id: string }[]).map((r) => r.id);
  const held = () => nodes.map((n) => store.heldCount(n));
  assert.deepEqual(held(), [0, 0, 0, 0], 'nothing leased');
  store.lease(ids.slice(0, 5), 'n1', 30_000);
  store.lease(ids.slice(5, 8), 'n2', 30_000);
  assert.deepEqual(held(), [5, 3, 0, 0], 'leased');
  // n3 runs copies of two of n1's jobs, n2 of one: each counts for both holders.
  assert.ok(store.leaseCopy(ids[0]!, 'n3', 30_000));
  assert.ok(store.leaseCopy(ids[1]!, 'n3', 30_000));
  assert.ok(store.leaseCopy(ids[2]!, 'n2', 30_000));
  assert.deepEqual(held(), [5, 4, 2, 0], 'copies');
  const job = store.getJob(ids[0]!)!;
  assert.ok(store.completeJob(job.id, 'n3', { ...ownKeys(job), renderMs: 5, skipped: false }).accepted);
  store.requeue([ids[5]!], 'test');
  assert.deepEqual(held(), [4, 3, 1, 0], 'a copy finished first, one requeued');
});

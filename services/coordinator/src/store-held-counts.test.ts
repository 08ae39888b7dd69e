/**
 * heldCounts (one statement for every node, used when a tick fills the whole
 * farm) against heldCount asked node by node: leases, straggler copies,
 * results and requeues all move the counts, and the two always agree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store } from './store.js';
import { ownKeys } from './store/completion.js';

test('heldCounts equals heldCount for every node, copies included', () => {
  const store = new Store(openDb(':memory:'));
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  for (const n of nodes) store.upsertNode(n, n, { vramMb: 24_000, backends: ['procedural'] });
  const spec = parseSpec({ prompts: ['p'], seeds: { count: 20 } });
  store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'm' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 1_000 })), 'sw');
  const ids = (store.db.prepare('SELECT id FROM jobs ORDER BY idx').all() as { id: string }[]).map((r) => r.id);
  const agree = (step: string) => {
    const all = store.heldCounts();
    for (const n of nodes) assert.equal(all.get(n) ?? 0, store.heldCount(n), `${step}: ${n}`);
    assert.deepEqual([...all.keys()].filter((n) => !nodes.includes(n)), [], `${step}: only nodes that hold something`);
  };
  agree('nothing leased');
  store.lease(ids.slice(0, 5), 'n1', 30_000);
  store.lease(ids.slice(5, 8), 'n2', 30_000);
  agree('leased');
  assert.equal(store.heldCounts().get('n1'), 5);
  // n3 runs copies of two of n1's jobs, n2 of one: each counts for both holders.
  assert.ok(store.leaseCopy(ids[0]!, 'n3', 30_000));
  assert.ok(store.leaseCopy(ids[1]!, 'n3', 30_000));
  assert.ok(store.leaseCopy(ids[2]!, 'n2', 30_000));
  agree('copies');
  assert.equal(store.heldCounts().get('n3'), 2);
  assert.equal(store.heldCounts().get('n2'), 4);
  const job = store.getJob(ids[0]!)!;
  assert.ok(store.completeJob(job.id, 'n3', { ...ownKeys(job), renderMs: 5, skipped: false }).accepted);
  store.requeue([ids[5]!], 'test');
  agree('a copy finished first, one requeued');
  assert.equal(store.heldCounts().get('n1'), 4);
  assert.equal(store.heldCounts().get('n3'), 1);
});

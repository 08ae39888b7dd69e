/**
 * What a heartbeat costs the store (issue 12, heartbeats at 1,000 nodes):
 * one statement renews every lease and straggler copy the node names, and
 * only those that are its own; `last_seen` is rewritten only once it is stale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store, type JobRow } from './store.js';
import { LAST_SEEN_PRECISION_MS } from './store/nodes.js';
import { RENEW_LEASES_SQL } from './store/jobs.js';

function setup() {
  const clock = { t: 1_000_000 };
  const store = new Store(openDb(':memory:'), { now: () => clock.t, maxAttempts: 3, blocklistAfter: 2 });
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 6 } });
  store.createSweep({ name: 'sw', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  for (const n of ['n1', 'n2']) store.upsertNode(n, n, {});
  return { store, clock, jobs: store.jobs('sw') };
}

const leases = (store: Store) =>
  Object.fromEntries(store.jobs('sw').map((j: JobRow) => [j.id, [j.state, j.node_id, j.lease_expires_at, j.copy_node_id, j.copy_lease_expires_at]]));

test("a heartbeat renews exactly the node's own leases and copies that it names, in one statement", () => {
  const { store, clock, jobs } = setup();
  const [own, copied, others, othersCopy, unnamed, queued] = jobs as [JobRow, JobRow, JobRow, JobRow, JobRow, JobRow];
  store.lease([own.id, unnamed.id], 'n1', 30_000);
  store.lease([copied.id, others.id, othersCopy.id], 'n2', 30_000);
  clock.t += 1_000;
  assert.ok(store.leaseCopy(copied.id, 'n1', 30_000), 'n1 copies a job of n2');
  assert.ok(store.leaseCopy(own.id, 'n2', 30_000), 'n2 copies a job of n1');
  clock.t += 5_000;
  const before = leases(store);

  // n1 names its lease, its copy, n2's jobs (one of which n2 copies... of n2's own), a queued job, an unknown id, and a duplicate.
  const renewed = store.renewLeases('n1', [own.id, copied.id, others.id, othersCopy.id, queued.id, 'no-such-job', own.id], 30_000);
  const after = leases(store);
  const until = clock.t + 30_000;

  assert.equal(renewed, 2, 'its own lease and its own copy; nothing else');
  assert.deepEqual(after[own.id], ['leased', 'n1', until, 'n2', before[own.id]![4]], "n1's lease renewed; n2's copy of it is n2's to renew");
  assert.deepEqual(after[copied.id], ['leased', 'n2', before[copied.id]![2], 'n1', until], "n1's copy renewed; n2's lease of it is n2's to renew");
  for (const id of [others.id, othersCopy.id, queued.id]) assert.deepEqual(after[id], before[id], `${id} is not n1's: untouched`);
  assert.deepEqual(after[unnamed.id], before[unnamed.id], 'a lease the node no longer names is not renewed (it runs out)');

  assert.equal(store.renewLeases('n1', [], 30_000), 0, 'nothing named, nothing renewed');
  assert.equal(store.renewLeases('n2', [own.id, copied.id], 30_000), 2, "n2 renews its copy of n1's job and its own lease");
  assert.deepEqual(leases(store)[own.id], ['leased', 'n1', until, 'n2', clock.t + 30_000]);
});

test('renewed leases outlive the expiry and unrenewed ones do not', () => {
  const { store, clock, jobs } = setup();
  const [a, b] = jobs as [JobRow, JobRow];
  store.lease([a.id, b.id], 'n1', 10_000);
  clock.t += 9_000;
  store.renewLeases('n1', [a.id], 10_000);
  clock.t += 2_000;
  assert.deepEqual(store.expireLeases().map((j) => j.id), [b.id]);
  assert.equal(store.getJob(a.id)!.state, 'leased');
});

test('the renewal looks jobs up by key, never scans the queue', () => {
  const { store } = setup();
  const plan = store.db
    .prepare(`EXPLAIN QUERY PLAN ${RENEW_LEASES_SQL}`)
    .all({ node: 'n1', until: 0, due: 0, ids: '[]' }) as { detail: string }[];
  const details = plan.map((p) => p.detail).join(' | ');
  assert.doesNotMatch(details, /SCAN jobs\b/, details);
  assert.match(details, /SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 \(id=\?\)/, details);
});

test('last_seen is rewritten once it is stale, not on every heartbeat; going offline writes it exactly', () => {
  const { store, clock } = setup();
  const seen = () => store.listNodes().find((n) => n.id === 'n1')!.last_seen;
  const registered = seen();
  clock.t += LAST_SEEN_PRECISION_MS - 1;
  assert.equal(store.touchNode('n1'), false, 'fresh enough: no write');
  assert.equal(seen(), registered);
  clock.t += 1;
  assert.equal(store.touchNode('n1'), true, 'stale: written');
  assert.equal(seen(), clock.t);
  clock.t += 500;
  assert.equal(store.touchNode('n1'), false);
  store.setNodeStatus('n1', 'offline');
  assert.equal(seen(), clock.t, 'a disconnect records the moment, whatever the precision');
  assert.equal(store.touchNode('nobody'), false, 'an unknown node writes nothing');
});

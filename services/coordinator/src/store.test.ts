/** The Store: every stored image announced exactly once, who may report a result, and pruning old bookkeeping rows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store } from './store.js';
import { listImages } from './dashboard/gallery.js';

function setup() {
  const store = new Store(openDb(':memory:'), { now: () => 1_000_000, maxAttempts: 3, blocklistAfter: 2 });
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 2 } });
  const add = (id: string) =>
    store.createSweep({ name: id, spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), id);
  return { store, add };
}

const renderedEvents = (store: Store) =>
  (store.db.prepare(`SELECT msg_id FROM outbox WHERE subject = 'nightshift.image.rendered' ORDER BY id`).all() as { msg_id: string }[]).map((r) => r.msg_id);
const keysOf = (renderKey: string) => ({ imageKey: `images/${renderKey}.png`, thumbKey: `thumbs/${renderKey}.webp`, renderMs: 0 });

test('a skipped job whose image no job announced (its renderer died after the upload) announces it and lists it', () => {
  const { store, add } = setup();
  add('sw-1');
  const [died, fine] = store.jobs('sw-1', ['queued']);
  assert.ok(died && fine);
  store.lease([died.id, fine.id], 'n1', 30_000);
  store.completeJob(fine.id, 'n1', { ...keysOf(fine.render_key), skipped: false });
  // n1 uploaded `died`'s image and was killed before reporting; n2 finds it stored.
  store.releaseNode('n1', 'node lost');
  store.lease([died.id], 'n2', 30_000);
  assert.equal(store.completeJob(died.id, 'n2', { ...keysOf(died.render_key), skipped: true }).accepted, true);
  assert.deepEqual(renderedEvents(store).sort(), [died.render_key, fine.render_key].sort());
  const gallery = listImages(store.db, { offset: 0, limit: 10 }, (k) => k);
  assert.deepEqual(gallery.images.map((i) => i.renderKey).sort(), [died.render_key, fine.render_key].sort());
  assert.equal(gallery.total, 2);
});

test('a rerun that finds every image stored announces nothing again and lists each image once', () => {
  const { store, add } = setup();
  add('sw-1');
  const first = store.jobs('sw-1', ['queued']);
  store.lease(first.map((j) => j.id), 'n1', 30_000);
  for (const j of first) store.completeJob(j.id, 'n1', { ...keysOf(j.render_key), skipped: false });
  add('sw-2');
  const rerun = store.jobs('sw-2', ['queued']);
  store.lease(rerun.map((j) => j.id), 'n1', 30_000);
  for (const j of rerun) store.completeJob(j.id, 'n1', { ...keysOf(j.render_key), skipped: true });
  assert.equal(store.counts('sw-2').skipped, 2);
  assert.equal(renderedEvents(store).length, 2, 'one event per image');
  assert.equal(listImages(store.db, { offset: 0, limit: 10 }, (k) => k).total, 2);
});

test('completeJob: only a holder (lease, copy, or the lease just moved on) with the job\'s own keys; a refusal records nothing', () => {
  const { store, add } = setup();
  add('sw-1');
  const [a, b] = store.jobs('sw-1', ['queued']);
  assert.ok(a && b);
  const report = (job: typeof a, keys = keysOf(job.render_key)) => ({ ...keys, skipped: false });
  const audits = () => (store.db.prepare('SELECT COUNT(*) AS n FROM results').get() as { n: number }).n;
  // A queued job: nobody holds it.
  assert.deepEqual(store.completeJob(a.id, 'rogue', report(a)).refused?.reason, 'not held');
  store.lease([a.id], 'n1', 30_000);
  assert.equal(store.completeJob(a.id, 'rogue', report(a)).refused?.reason, 'not held', "another node's job");
  assert.equal(store.completeJob(a.id, 'n1', report(a, keysOf(b.render_key))).refused?.reason, 'wrong key');
  assert.equal(store.completeJob(a.id, 'n1', report(a, { ...keysOf(a.render_key), thumbKey: '' })).refused?.reason, 'wrong key');
  assert.equal(store.completeJob('no-such-job', 'n1', report(a)).refused?.reason, 'unknown job');
  assert.equal(audits(), 0);
  assert.equal(store.getJob(a.id)!.state, 'leased');
  // n1's lease runs out and n2 takes the job; n1's late report still wins and n2 is told to stop.
  store.requeue([a.id], 'lease expired');
  store.lease([a.id], 'n2', 30_000);
  assert.deepEqual(store.completeJob(a.id, 'n1', report(a)), { accepted: true, cancelOn: ['n2'] });
  // n2, told to stop, may still report: audited, not refused, and changes nothing.
  assert.deepEqual(store.completeJob(a.id, 'n2', report(a)), { accepted: false, cancelOn: [] });
  assert.deepEqual(store.results(a.id).map((r) => [r.node_id, r.accepted]), [['n1', 1], ['n2', 0]]);
  assert.equal(store.getJob(a.id)!.image_key, keysOf(a.render_key).imageKey);
});

test('pruning deletes only published outbox rows and result audits older than the cut-off, a batch at a time', () => {
  const clock = { t: 1_000 };
  const store = new Store(openDb(':memory:'), { now: () => clock.t, maxAttempts: 3, blocklistAfter: 2 });
  const spec = parseSpec({ prompts: ['p'], seeds: { count: 5 } });
  store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  const jobs = store.jobs('sw', ['queued']);
  store.lease(jobs.map((j) => j.id), 'n1', 30_000);
  for (const j of jobs.slice(0, 3)) store.completeJob(j.id, 'n1', { ...keysOf(j.render_key), skipped: false });
  const published = store.pendingEvents(100).slice(0, 2).map((r) => r.id);
  store.markPublished(published);
  clock.t = 5_000;
  for (const j of jobs.slice(3)) store.completeJob(j.id, 'n1', { ...keysOf(j.render_key), skipped: false });
  store.markPublished(store.pendingEvents(100).slice(0, 1).map((r) => r.id));
  const count = (sql: string) => (store.db.prepare(sql).get() as { n: number }).n;
  const unpublished = count('SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL');
  assert.equal(store.pruneOutbox(2_000, 1), 1, 'one row per batch');
  assert.equal(store.pruneOutbox(2_000, 1_000), 1, 'the other row published before the cut-off');
  assert.equal(store.pruneOutbox(2_000, 1_000), 0, 'rows published after it stay');
  assert.equal(count('SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL'), unpublished, 'unpublished rows are never pruned');
  assert.equal(store.pruneResults(2_000, 1_000), 3);
  assert.deepEqual((store.db.prepare('SELECT at FROM results').all() as { at: number }[]).map((r) => r.at), [5_000, 5_000]);
});

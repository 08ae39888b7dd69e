/** The Store's image announcements: every stored image is announced exactly once. */
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

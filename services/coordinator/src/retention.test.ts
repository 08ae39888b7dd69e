/** Retention: old published outbox rows and result audits go, in small batches, by an injected clock; only while holding the duty. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@nightshift/common';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { ownKeys } from './store/completion.js';
import { HOUR_MS, RETENTION_DUTY, Retention, type RetentionParts } from './retention.js';

const log = createLogger('retention-test', 'silent');
const DAY_MS = 24 * HOUR_MS;

/** A SQLite engine on a settable clock, its prune statements counted (rows deleted per batch). */
function farm(clock: { t: number }) {
  const store = new EngineStore(openDb(':memory:'), { now: () => clock.t });
  const engine = new SqliteEngine(store);
  const batches: number[] = [];
  const counted = (prune: (before: number, limit: number) => Promise<number>) => async (before: number, limit: number) => {
    const n = await prune(before, limit);
    batches.push(n);
    return n;
  };
  const parts: RetentionParts = {
    lead: (duty) => engine.lead(duty),
    retention: { pruneOutbox: counted(engine.retention.pruneOutbox), pruneResults: counted(engine.retention.pruneResults) },
  };
  /** Marks every pending event published now. */
  const publishAll = async () => engine.markPublished((await engine.listings.pendingEvents(10_000)).map((r) => r.id));
  let seq = 0;
  /** `n` events published at `at`. */
  const published = async (n: number, at: number) => {
    clock.t = at;
    for (let i = 0; i < n; i++) await engine.appendEvent('nightshift.test', `m${seq++}`, { i });
    await publishAll();
  };
  const count = (table: 'outbox' | 'results') => (store.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
  return { store, engine, parts, batches, published, publishAll, count };
}

test('rows past their retention are deleted in batches; newer rows stay', async () => {
  const now = 100 * DAY_MS;
  const clock = { t: now - 40 * DAY_MS };
  const f = farm(clock);
  // Eight result audits: seven 31 days old, one 29 days old.
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 8 } });
  f.store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  f.store.upsertNode('n1', 'gpu-one', {});
  for (const [i, j] of f.store.jobs('sw').entries()) {
    clock.t = now - (i < 7 ? 31 : 29) * DAY_MS;
    f.store.lease([j.id], 'n1', 30_000);
    f.store.completeJob(j.id, 'n1', { ...ownKeys(j), renderMs: 1, skipped: false });
  }
  // The sweep's own events published an hour ago (kept); 25 published 25 h ago, 3 published 23 h ago.
  clock.t = now - HOUR_MS;
  await f.publishAll();
  const recent = f.count('outbox');
  await f.published(25, now - 25 * HOUR_MS);
  await f.published(3, now - 23 * HOUR_MS);
  clock.t = now;
  const r = new Retention(f.parts, log, { outboxMs: 24 * HOUR_MS, resultsMs: 30 * DAY_MS, batch: 10, now: () => clock.t });
  assert.deepEqual(await r.prune(), { outbox: 25, results: 7 });
  assert.deepEqual(f.batches, [10, 10, 5, 7], 'batches of at most 10; a short batch ends the pass');
  assert.equal(f.count('outbox'), recent + 3);
  assert.equal(f.count('results'), 1);
  // Two hours later the outbox rows 23 h old have aged past 24 h.
  clock.t += 2 * HOUR_MS;
  assert.deepEqual(await r.prune(), { outbox: 3, results: 0 });
  assert.equal(f.count('outbox'), recent);
});

test('the timer prunes on its own while it holds the duty and does not keep the process alive; stop ends it and frees the duty', async () => {
  const clock = { t: 0 };
  const f = farm(clock);
  await f.published(1, 0);
  const r = new Retention(f.parts, log, { outboxMs: 1, resultsMs: 1, everyMs: 5, now: () => 10 });
  r.start();
  const deadline = Date.now() + 2_000;
  while (f.count('outbox') && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
  assert.equal(f.count('outbox'), 0);
  assert.equal(r.leading(), true);
  await r.stop();
  assert.equal(r.leading(), false);
  const after = f.batches.length;
  await new Promise((res) => setTimeout(res, 30));
  assert.equal(f.batches.length, after, 'no pass after stop');
  const taken = await f.engine.lead(RETENTION_DUTY);
  assert.ok(taken, 'the duty was released');
  await taken.release();
});

test('a replica that does not hold the duty never prunes; it takes the duty once the holder lets go', async () => {
  const clock = { t: 0 };
  const f = farm(clock);
  await f.published(3, 0);
  const holder = await f.engine.lead(RETENTION_DUTY);
  assert.ok(holder);
  const r = new Retention(f.parts, log, { outboxMs: 1, resultsMs: 1, everyMs: 1, pollMs: 5, now: () => 10 });
  r.start();
  // It asks every 5 ms: let it ask a few times (each answered 'held elsewhere') before letting go.
  const asked = Date.now() + 50;
  while (Date.now() < asked) await new Promise((res) => setTimeout(res, 5));
  assert.equal(r.leading(), false);
  assert.equal(f.count('outbox'), 3, 'nothing pruned by a replica without the duty');
  await holder.release();
  const deadline = Date.now() + 5_000;
  while (f.count('outbox') && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
  assert.equal(f.count('outbox'), 0, 'pruned once the duty was taken over');
  assert.equal(r.leading(), true);
  await r.stop();
});

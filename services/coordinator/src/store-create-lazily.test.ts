/**
 * A sweep stored from jobs made as they are stored (issue 12: a 100,000-job
 * submit never holds the whole sweep): total, counters and the sweep.created
 * event come from what was stored, and a job that fails to be made rolls the
 * whole sweep back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandSweep, expandSweepLazily, parseSpec } from '@nightshift/sweep';
import { SUBJECTS } from '@nightshift/common';
import { openDb } from './db.js';
import { Store, type NewJob } from './store.js';

// 300 jobs: two full multi-row INSERTs of 128 and a tail of 44 (store/sweeps.ts JOB_ROWS).
const spec = parseSpec({ prompts: ['a lighthouse', 'a harbour'], axes: { 'params.steps': [2, 3] }, seeds: { count: 75 } });
const SWEEP = { name: 'lazy', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' };

function* stored(jobs: Iterable<Omit<NewJob, 'minVramMb'>>, failAt = Infinity): Generator<NewJob> {
  for (const j of jobs) {
    if (j.index === failAt) throw new Error(`job ${failAt} could not be made`);
    yield { ...j, minVramMb: 0 };
  }
}

const created = (store: Store) => store.pendingEvents(100).filter((e) => e.subject === SUBJECTS.sweepCreated);

test('a sweep stored from a lazy expansion holds exactly the eager expansion, counted', () => {
  const store = new Store(openDb(':memory:'));
  const { total, jobs } = expandSweepLazily(spec, 1_000);
  const sweep = store.createSweep(SWEEP, stored(jobs), 'sw');
  assert.equal(total, 300);
  assert.equal(sweep.total, 300);
  assert.deepEqual(store.counts('sw'), { queued: 300, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 });
  assert.deepEqual(
    store.jobs('sw').map((j) => [j.idx, j.render_key, j.prompt, j.seed, JSON.parse(j.params_json)]),
    expandSweep(spec, 1_000).map((j) => [j.index, j.renderKey, j.prompt, j.seed, j.params]),
  );
  assert.equal((JSON.parse(created(store)[0]!.payload) as { jobs: number }).jobs, 300);
});

test('a job that fails to be made rolls the whole sweep back: no sweep, no jobs, no counters, no event', () => {
  const store = new Store(openDb(':memory:'));
  // Job 200: after the first 128 rows went in.
  assert.throws(() => store.createSweep(SWEEP, stored(expandSweepLazily(spec, 1_000).jobs, 200), 'sw'), /job 200 could not be made/);
  assert.equal(store.getSweep('sw'), undefined);
  assert.equal(store.jobs('sw').length, 0);
  assert.deepEqual(store.db.prepare('SELECT * FROM sweep_counts').all(), []);
  assert.deepEqual(created(store), []);
});

test('an empty iterable stores an empty sweep (an upscale batch of nothing is refused before)', () => {
  const store = new Store(openDb(':memory:'));
  assert.equal(store.createSweep(SWEEP, [], 'sw').total, 0);
  assert.deepEqual(store.counts('sw'), { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 });
});

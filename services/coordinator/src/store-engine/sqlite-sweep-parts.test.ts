/**
 * What storing a big sweep in parts means on SQLite alone (the rest is
 * conformance-sweep-parts.ts, on both engines): a small sweep takes no turn,
 * a stopped coordinator's short sweep is cancelled at its next start, parts
 * commit on their own inside turn batching, and a cancel that failed is
 * done by the next settle pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { tempDir } from '@nightshift/devfarm';
import { expandSweepLazily, parseSpec } from '@nightshift/sweep';
import { SqliteEngine, SWEEP_PART_JOBS } from './sqlite.js';
import { PROC } from './conformance-helpers.js';
import { memoJson } from '../store/sweeps.js';
import type { NewJob } from './engine.js';

// 5,000 jobs: two whole parts and a short third.
const SIZE = 5_000;
const spec = parseSpec({ prompts: ['a lighthouse', 'a harbour'], seeds: { count: SIZE / 2 } });
const SWEEP = { name: 'big', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' };
const LEASE = 60_000;

/** The expansion as stored, failing at job `failAt` if given. */
function* made(limit = Infinity, failAt = Infinity): Generator<NewJob> {
  for (const j of expandSweepLazily(spec, 10_000).jobs) {
    if (j.index === failAt) throw new Error(`job ${failAt} could not be made`);
    if (j.index >= limit) return;
    yield { ...j, minVramMb: 0 };
  }
}

async function withEngine(fn: (engine: SqliteEngine, file: string) => Promise<void>): Promise<void> {
  const tmp = tempDir('nightshift-parts-');
  const file = join(tmp.dir, 'coordinator.sqlite');
  const engine = SqliteEngine.open(file);
  try {
    await fn(engine, file);
  } finally {
    await engine.close();
    tmp.cleanup();
  }
}

const jobCount = (engine: SqliteEngine, id: string) => (engine.store.db.prepare('SELECT COUNT(*) AS n FROM jobs WHERE sweep_id = ?').get(id) as { n: number }).n;

test('a sweep no bigger than a part, or whose size is not known first, is stored in one transaction', async () => {
  await withEngine(async (engine) => {
    let turned = false;
    setImmediate(() => (turned = true));
    let parts = 0;
    await engine.createSweep({ ...SWEEP, expectedJobs: SWEEP_PART_JOBS, partStored: () => void parts++ }, made(SWEEP_PART_JOBS), 'sw-one');
    await engine.createSweep({ ...SWEEP, partStored: () => void parts++ }, made(), 'sw-unknown');
    assert.equal(turned, false, 'no turn given back while storing');
    assert.equal(parts, 0);
    assert.equal(jobCount(engine, 'sw-one'), SWEEP_PART_JOBS);
    assert.equal(jobCount(engine, 'sw-unknown'), SIZE);
  });
});

test('a coordinator stopped while storing a sweep: the next start cancels it, counting what it has; whole and empty sweeps are left alone', async () => {
  await withEngine(async (engine) => {
    // What a stop between parts leaves: the first part, and the sweep counting all its jobs as queued.
    engine.store.beginSweepInParts(SWEEP, SIZE, made(), SWEEP_PART_JOBS, 'sw-short', memoJson());
    await engine.createSweep({ ...SWEEP, expectedJobs: SIZE }, made(), 'sw-whole');
    await engine.createSweep(SWEEP, [], 'sw-empty');
    const leased = (await engine.leaseNext('n1', PROC, LEASE))!;
    assert.equal(leased.sweep_id, 'sw-short', 'its jobs went out before the stop');
    assert.deepEqual(await engine.counts('sw-short'), { queued: SIZE - 1, running: 1, done: 0, failed: 0, skipped: 0, cancelled: 0 });

    assert.deepEqual(await engine.endSweepsStoredShort(), ['sw-short']);
    const short = (await engine.getSweep('sw-short'))!;
    assert.equal(short.status, 'cancelled');
    assert.equal(short.total, SWEEP_PART_JOBS);
    assert.deepEqual(await engine.counts('sw-short'), { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: SWEEP_PART_JOBS });
    assert.equal((await engine.getSweep('sw-whole'))!.status, 'queued');
    assert.equal((await engine.getSweep('sw-empty'))!.status, 'queued');
    assert.deepEqual(await engine.endSweepsStoredShort(), [], 'once');
  });
});

test('a sweep cancelled while its parts were stored, then the coordinator stopped: the next start makes its counts add up', async () => {
  await withEngine(async (engine) => {
    engine.store.beginSweepInParts(SWEEP, SIZE, made(), SWEEP_PART_JOBS, 'sw', memoJson());
    await engine.cancelSweep('sw');
    assert.deepEqual(await engine.counts('sw'), { queued: SIZE - SWEEP_PART_JOBS, running: 0, done: 0, failed: 0, skipped: 0, cancelled: SWEEP_PART_JOBS }, 'the jobs never stored still count as queued');
    assert.deepEqual(await engine.endSweepsStoredShort(), ['sw']);
    assert.equal((await engine.getSweep('sw'))!.total, SWEEP_PART_JOBS);
    assert.deepEqual(await engine.counts('sw'), { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: SWEEP_PART_JOBS });
  });
});

test('parts commit on their own when the caller writes in event-loop turns: each is durable when the hub hears of it', async () => {
  await withEngine(async (engine, file) => {
    engine.store.batchTurns(
      (err) => assert.fail(`a turn was lost: ${String(err)}`),
      (err) => assert.fail(String(err)),
    );
    const reader = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const durable: number[] = [];
      const count = reader.prepare('SELECT COUNT(*) AS n FROM jobs');
      // No unbatched caller here: on its own, each write would join the turn's transaction, committed later.
      await engine.createSweep({ ...SWEEP, expectedJobs: SIZE, partStored: () => void durable.push((count.get() as { n: number }).n) }, made(), 'sw');
      assert.deepEqual(durable, [SWEEP_PART_JOBS, 2 * SWEEP_PART_JOBS, SIZE]);
    } finally {
      reader.close();
    }
  });
});

test('a sweep whose parts stopped short and whose cancel failed too is cancelled by the next settle pass', async () => {
  await withEngine(async (engine) => {
    const store = engine.store;
    const endSweepShort = store.endSweepShort.bind(store);
    let failures = 1;
    store.endSweepShort = (id, stored) => {
      if (failures-- > 0) throw new Error('disk I/O error');
      return endSweepShort(id, stored);
    };
    await assert.rejects(engine.createSweep({ ...SWEEP, expectedJobs: SIZE }, made(Infinity, SWEEP_PART_JOBS + 1), 'sw'), /is to be cancelled shortly \(cancelling it now failed: Error: disk I\/O error\)/);
    assert.equal((await engine.getSweep('sw'))!.status, 'queued', 'still open');
    await engine.settleIdleSweeps();
    assert.equal((await engine.getSweep('sw'))!.status, 'cancelled');
    assert.deepEqual(await engine.counts('sw'), { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: SWEEP_PART_JOBS });
  });
});

test('fills after the first part that never end hold the rest of the sweep FIRST_FILLS_WAIT_MS at most', async () => {
  await withEngine(async (engine) => {
    let told = 0;
    // A listener whose promise never settles: a node line that hangs.
    const sweep = await engine.createSweep({ ...SWEEP, expectedJobs: SIZE, partStored: () => (told++ === 0 ? new Promise<void>(() => {}) : undefined) }, made(), 'sw');
    assert.equal(sweep.total, SIZE);
    assert.equal(jobCount(engine, 'sw'), SIZE);
    assert.equal(told, 3);
  });
});

/**
 * Conformance: a big sweep is stored in parts on both engines (sweep-parts.ts;
 * the fixtures let the first part's listener run to its end, see
 * StoreOptions.firstFillsWaitMs):
 * nodes lease the first part's jobs while the rest are made; a cancel or a
 * failure of its queued jobs meanwhile reaches the parts still to come (on
 * PostgreSQL from another replica); a sweep whose parts stop short is
 * cancelled with counts that add up, never left half stored.
 */
import assert from 'node:assert/strict';
import { LEASE, PROC, newJobs, report } from './conformance-helpers.js';
import type { WithFixture } from './conformance.js';
import type { NewJob, StoreEngine } from './engine.js';
import { SWEEP_PART_JOBS } from './sweep-parts.js';

// 5,000 jobs: more than one part (SQLite's later parts are as small as the first, PostgreSQL's bigger).
const SIZE = 5_000;
const SWEEP = { name: 'big', spec: {}, priority: 0, backend: 'procedural', model: 'm1' };
const NONE = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };

/** The expansion as stored (SIZE jobs), stopping after `limit` or failing at job `failAt` if given. */
function* made(limit = Infinity, failAt = Infinity): Generator<NewJob> {
  for (const j of newJobs('big', SIZE)) {
    if (j.index === failAt) throw new Error(`job ${failAt} could not be made`);
    if (j.index >= limit) return;
    yield j;
  }
}

const stored = async (engine: StoreEngine, id: string) => (await engine.listings.jobs(id)).length;

export function sweepPartsConformance(withFixture: WithFixture): void {
  withFixture('a sweep bigger than a part: a node leases its first job before the rest are stored, and the sweep ends up whole', async ({ engine }) => {
    assert.ok(SIZE > SWEEP_PART_JOBS, 'the sweep spans parts');
    let parts = 0;
    let leasedWhileStoring: { idx: number; storedThen: number } | undefined;
    const partStored = async () => {
      if (parts++ > 0) return;
      const job = await engine.leaseNext('n1', PROC, LEASE);
      leasedWhileStoring = job && { idx: job.idx, storedThen: await stored(engine, 'sw') };
    };
    const sweep = await engine.createSweep({ ...SWEEP, expectedJobs: SIZE, partStored }, made(), 'sw');
    assert.deepEqual(leasedWhileStoring, { idx: 0, storedThen: SWEEP_PART_JOBS }, 'job 0 leased while only the first part was stored');
    assert.ok(parts >= 2, 'each part committed is told of');
    assert.equal(sweep.total, SIZE);
    assert.equal(sweep.status, 'running');
    assert.deepEqual(await engine.counts('sw'), { ...NONE, queued: SIZE - 1, running: 1 });
    const jobs = (await engine.listings.jobs('sw')).sort((a, b) => a.idx - b.idx);
    assert.deepEqual(
      jobs.map((j) => [j.idx, j.render_key, j.prompt, j.seed]),
      newJobs('big', SIZE).map((j) => [j.index, j.renderKey, j.prompt, j.seed]),
    );
    assert.deepEqual(await engine.endSweepsStoredShort(), [], 'a whole sweep is not short');
    await engine.settleIdleSweeps();
    assert.equal((await engine.getSweep('sw'))!.status, 'running', 'nor ended by a settle pass');
  });

  withFixture('a sweep no bigger than a part, or whose size is not known first, is stored at once', async ({ engine }) => {
    let parts = 0;
    await engine.createSweep({ ...SWEEP, expectedJobs: SWEEP_PART_JOBS, partStored: () => void parts++ }, made(SWEEP_PART_JOBS), 'sw-one');
    await engine.createSweep({ ...SWEEP, partStored: () => void parts++ }, made(), 'sw-unknown');
    assert.equal(parts, 0);
    assert.equal(await stored(engine, 'sw-one'), SWEEP_PART_JOBS);
    assert.equal(await stored(engine, 'sw-unknown'), SIZE);
  });

  withFixture('a sweep cancelled (by another replica) while its parts are stored: the rest are stored cancelled, and its counts add up to its total', async ({ engine, another }) => {
    const other = await another();
    let parts = 0;
    const partStored = async () => {
      if (parts++ === 0) await other.cancelSweep('sw');
    };
    const sweep = await engine.createSweep({ ...SWEEP, expectedJobs: SIZE, partStored }, made(), 'sw');
    assert.equal(sweep.status, 'cancelled');
    assert.equal(await stored(engine, 'sw'), SIZE);
    assert.deepEqual(await engine.counts('sw'), { ...NONE, cancelled: SIZE });
    assert.equal(await engine.leaseNext('n1', PROC, LEASE), undefined);
  });

  withFixture('queued jobs failed (by another replica) for want of a capable node while parts are stored: the later parts fail too, and the sweep ends failed', async ({ engine, another }) => {
    const other = await another();
    const reason = 'no capable node left: every node with backend procedural is blocklisted for this sweep';
    let parts = 0;
    const partStored = async () => {
      if (parts++ === 0) await other.failQueued('sw', reason);
    };
    await engine.createSweep({ ...SWEEP, expectedJobs: SIZE, partStored }, made(), 'sw');
    assert.equal((await engine.getSweep('sw'))!.status, 'failed');
    assert.deepEqual(await engine.counts('sw'), { ...NONE, failed: SIZE });
    assert.ok((await engine.listings.jobs('sw')).every((j) => j.error === reason));
  });

  withFixture('an expansion that fails in a later part: the sweep is cancelled, counts the jobs it has, and the error says so', async ({ engine }) => {
    const failAt = SWEEP_PART_JOBS + 100;
    await assert.rejects(engine.createSweep({ ...SWEEP, expectedJobs: SIZE }, made(Infinity, failAt), 'sw'), (err: Error) => {
      assert.match(err.message, new RegExp(`storing sweep sw stopped after ${SWEEP_PART_JOBS} of its ${SIZE} jobs, so it is cancelled`));
      assert.match(err.message, new RegExp(`job ${failAt} could not be made`));
      return true;
    });
    const sweep = (await engine.getSweep('sw'))!;
    assert.equal(sweep.status, 'cancelled');
    assert.equal(sweep.total, SWEEP_PART_JOBS, 'the part that failed was rolled back');
    assert.equal(await stored(engine, 'sw'), SWEEP_PART_JOBS);
    assert.deepEqual(await engine.counts('sw'), { ...NONE, cancelled: SWEEP_PART_JOBS });
    assert.deepEqual(await engine.endSweepsStoredShort(), [], 'ended once');
  });

  withFixture('a sweep stored short after its first jobs were leased and finished keeps them: the rest are cancelled', async ({ engine }) => {
    const partStored = async () => {
      const job = await engine.leaseNext('n1', PROC, LEASE);
      if (job?.idx === 0) await engine.completeJob(job.id, 'n1', report(job));
    };
    await assert.rejects(engine.createSweep({ ...SWEEP, expectedJobs: SIZE, partStored }, made(Infinity, SWEEP_PART_JOBS + 1), 'sw'), /is cancelled/);
    assert.deepEqual(await engine.counts('sw'), { ...NONE, done: 1, cancelled: SWEEP_PART_JOBS - 1 });
    assert.equal((await engine.getSweep('sw'))!.total, SWEEP_PART_JOBS);
  });

  withFixture('an expansion that makes fewer or more jobs than it counted ends the sweep the same way', async ({ engine }) => {
    await assert.rejects(engine.createSweep({ ...SWEEP, expectedJobs: SIZE }, made(3_000), 'sw-few'), /stopped after 3000 of its 5000 jobs.*made 3000 jobs of the 5000 it counted/);
    assert.deepEqual(await engine.counts('sw-few'), { ...NONE, cancelled: 3_000 });
    assert.equal((await engine.getSweep('sw-few'))!.total, 3_000);
    await assert.rejects(engine.createSweep({ ...SWEEP, expectedJobs: 3_000 }, made(), 'sw-many'), /stopped after 3000 of its 3000 jobs.*more jobs than the 3000 it counted/);
    assert.equal((await engine.getSweep('sw-many'))!.status, 'cancelled');
    assert.deepEqual(await engine.counts('sw-many'), { ...NONE, cancelled: 3_000 });
    // A first part that falls short rolls back whole, like a sweep stored at once.
    await assert.rejects(engine.createSweep({ ...SWEEP, expectedJobs: SIZE }, made(100), 'sw-short-first'), /made 100 jobs of the 5000 it counted/);
    assert.equal(await engine.getSweep('sw-short-first'), undefined);
    assert.deepEqual(await engine.endSweepsStoredShort(), []);
  });

  withFixture('a daily quota counts the whole sweep in its first part: refused, nothing is stored', async ({ engine }) => {
    const quota = { since: 0, imagesPerDay: SIZE - 1 };
    await assert.rejects(engine.createSweep({ ...SWEEP, expectedJobs: SIZE, quota }, made(), 'sw'), (err: Error) => err.name === 'QuotaRaced' || /quota/i.test(err.message));
    assert.equal(await engine.getSweep('sw'), undefined);
    assert.equal(await stored(engine, 'sw'), 0);
  });
}

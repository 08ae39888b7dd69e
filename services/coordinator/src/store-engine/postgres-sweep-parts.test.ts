/**
 * What storing a big sweep in parts means on PostgreSQL alone, with replicas
 * (the rest is conformance-sweep-parts.ts, on both engines): a replica that
 * dies while storing leaves its sweep to the others' hub tick, or to its
 * own next start under the same name; a live replica's sweep is left alone;
 * a replica whose sweep another ended meanwhile stops with a clear error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { postgresForFile } from '@nightshift/devfarm';
import { PROC, LEASE, newJobs } from './conformance-helpers.js';
import { MAX_APPLICATION_NAME_BYTES, PostgresEngine } from './postgres.js';
import { PG_LATER_PART_JOBS } from './postgres-sweep-parts.js';
import { SWEEP_PART_JOBS } from './sweep-parts.js';

const { skip, server } = postgresForFile();

const SIZE = 5_000;
const SWEEP = { name: 'big', spec: {}, priority: 0, backend: 'procedural', model: 'm1', expectedJobs: SIZE };
const NONE = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };
let databases = 0;

/** A fresh database and a first replica on it, closed after `body`, with `open` for more (closed too). */
async function withReplicas(body: (a: PostgresEngine, open: (name?: string) => Promise<PostgresEngine>, url: string) => Promise<void>): Promise<void> {
  const url = await server().createDatabase(`parts_${++databases}`);
  const engines: PostgresEngine[] = [];
  const open = async (applicationName?: string) => {
    // The first part's listener runs to its end before the next part, however slow the box (sweep-parts.ts).
    const e = await PostgresEngine.open({ url, firstFillsWaitMs: 60_000, ...(applicationName ? { applicationName } : {}) });
    engines.push(e);
    return e;
  };
  try {
    await body(await open(), open, url);
  } finally {
    for (const e of engines) await e.close();
  }
}

/**
 * Replica `b` stores the sweep and dies (its engine closes) once the first
 * part is stored: the rest never are, and it cannot end the sweep itself.
 */
async function dieWhileStoring(b: PostgresEngine, id: string): Promise<void> {
  await assert.rejects(b.createSweep({ ...SWEEP, partStored: () => b.close() }, newJobs('big', SIZE), id), /is to be cancelled shortly/);
}

test('a replica that dies while storing a sweep: another replica\'s tick cuts it to the jobs it has and cancels it', { skip, timeout: 60_000 }, async () => {
  await withReplicas(async (a, open) => {
    const b = await open();
    let leased: string | undefined;
    const partStored = async () => {
      leased = (await a.leaseNext('n1', PROC, LEASE))?.id;
      await b.close();
    };
    await assert.rejects(b.createSweep({ ...SWEEP, partStored }, newJobs('big', SIZE), 'sw'), /stopped after 2048 of its 5000 jobs, so it is to be cancelled shortly/);
    assert.ok(leased, 'a node leased from the first part');
    assert.deepEqual(await a.counts('sw'), { ...NONE, queued: SIZE - 1, running: 1 }, 'the jobs never stored still count as queued: nothing settles it');

    // What the hub's tick on every replica asks every 5 s.
    assert.deepEqual(await a.endSweepsStoredShort(), ['sw']);
    const sweep = (await a.getSweep('sw'))!;
    assert.equal(sweep.status, 'cancelled');
    assert.equal(sweep.total, SWEEP_PART_JOBS);
    assert.deepEqual(await a.counts('sw'), { ...NONE, cancelled: SWEEP_PART_JOBS });
    assert.deepEqual(await a.endSweepsStoredShort(), [], 'once');
  });
});

test('a replica started again under the name it stored a sweep with cancels that sweep at start', { skip, timeout: 60_000 }, async () => {
  await withReplicas(async (a, open) => {
    await dieWhileStoring(await open('replica-b'), 'sw');
    const again = await open('replica-b');
    assert.deepEqual(await again.endSweepsStoredShort(), ['sw']);
    assert.deepEqual(await a.counts('sw'), { ...NONE, cancelled: SWEEP_PART_JOBS });
  });
});

test('a sweep a live replica is storing is left alone by the others\' ticks and its own (its name as long as PostgreSQL keeps)', { skip, timeout: 60_000 }, async () => {
  await withReplicas(async (a, open) => {
    await assert.rejects(open(`nightshift-${'x'.repeat(MAX_APPLICATION_NAME_BYTES - 10)}`), /PostgreSQL keeps 63/, 'a longer name would never match its own sessions');
    const b = await open(`nightshift-${'x'.repeat(MAX_APPLICATION_NAME_BYTES - 11)}`);
    // The later parts' listeners are not awaited by the store: their passes are collected and awaited here.
    const passes: Promise<string[]>[] = [];
    const partStored = async () => {
      const pass = (async () => [...(await a.endSweepsStoredShort()), ...(await b.endSweepsStoredShort()), String(await a.settleIdleSweeps()), String(await b.settleIdleSweeps())])();
      passes.push(pass);
      await pass;
    };
    const sweep = await b.createSweep({ ...SWEEP, partStored }, newJobs('big', SIZE), 'sw');
    assert.equal(sweep.status, 'queued');
    const seen = await Promise.all(passes);
    assert.equal(seen.length, 1 + Math.ceil((SIZE - SWEEP_PART_JOBS) / PG_LATER_PART_JOBS), 'asked after each part');
    // The last part's pass may run after the sweep is whole: it must end nothing then either.
    assert.ok(seen.every((ids) => ids.length === 2 && ids[0] === '0' && ids[1] === '0'), 'none ended, none settled');
    assert.deepEqual(await a.counts('sw'), { ...NONE, queued: SIZE });
  });
});

test('a replica whose sweep another ended short meanwhile (it seemed gone) stops storing, with an error that says so', { skip, timeout: 60_000 }, async () => {
  await withReplicas(async (a, open, url) => {
    const b = await open();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      let parts = 0;
      let ended: string[] | undefined;
      const partStored = async () => {
        if (parts++ > 0) return;
        // As a replica sees one whose sessions all dropped for a moment: its name has none.
        await admin.query(`UPDATE sweeps_storing SET replica = 'gone' WHERE sweep_id = 'sw'`);
        ended = await a.endSweepsStoredShort();
      };
      await assert.rejects(b.createSweep({ ...SWEEP, partStored }, newJobs('big', SIZE), 'sw'), /stopped after 2048 of its 5000 jobs, so it is cancelled.*another replica ended the sweep short/);
      assert.deepEqual(ended, ['sw']);
      assert.equal((await a.getSweep('sw'))!.total, SWEEP_PART_JOBS);
      assert.deepEqual(await a.counts('sw'), { ...NONE, cancelled: SWEEP_PART_JOBS });
    } finally {
      await admin.end();
    }
  });
});

/** Marks the jobs of `sweepId` stored so far done, as nodes would have (their counters move by trigger). */
async function finishStored(url: string, sweepId: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`UPDATE jobs SET state = 'done', finished_at = 1 WHERE sweep_id = $1 AND state = 'queued'`, [sweepId]);
  } finally {
    await admin.end();
  }
}

test('a sweep cancelled while its parts are stored, once every job stored so far has finished, is cancelled: not settled, not left running', { skip, timeout: 60_000 }, async () => {
  await withReplicas(async (a, open, url) => {
    const b = await open();
    let parts = 0;
    const partStored = async () => {
      if (parts++ > 0) return;
      await finishStored(url, 'sw');
      await a.cancelSweep('sw');
    };
    const sweep = await b.createSweep({ ...SWEEP, partStored }, newJobs('big', SIZE), 'sw');
    assert.equal(sweep.status, 'cancelled');
    assert.deepEqual(await a.counts('sw'), { ...NONE, done: SWEEP_PART_JOBS, cancelled: SIZE - SWEEP_PART_JOBS });
  });
});

test('a sweep stored short once every job it has has finished is cancelled, not done (as on SQLite)', { skip, timeout: 60_000 }, async () => {
  await withReplicas(async (a, _open, url) => {
    function* failing() {
      for (const j of newJobs('big', SIZE)) {
        if (j.index === SWEEP_PART_JOBS + 1) throw new Error('job 2049 could not be made');
        yield j;
      }
    }
    await assert.rejects(a.createSweep({ ...SWEEP, partStored: () => finishStored(url, 'sw') }, failing(), 'sw'), /is cancelled/);
    assert.equal((await a.getSweep('sw'))!.status, 'cancelled');
    assert.deepEqual(await a.counts('sw'), { ...NONE, done: SWEEP_PART_JOBS });
  });
});

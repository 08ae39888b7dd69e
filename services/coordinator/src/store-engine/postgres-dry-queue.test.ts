import { test } from 'node:test';
import type pg from 'pg';
import assert from 'node:assert/strict';
import { postgresForFile } from '@nightshift/devfarm';
import { createPool } from './postgres-pool.js';
import { DRY_RECHECK_MS, DryQueue } from './postgres-dry-queue.js';
import { PostgresEngine } from './postgres.js';
import { PROC, newJobs } from './conformance-helpers.js';
import type { Wake } from './engine.js';

const { skip, server } = postgresForFile();

const sweep = (name: string) => ({ name, spec: {}, priority: 0, backend: 'procedural', model: 'm1' });

test('a dry queue is remembered only when no sweep has a queued job, at the count read before the pick; a wake, the recheck time or not listening ends it', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('dry_queue');
  const engine = await PostgresEngine.open({ url }); // the schema
  const pool = createPool({ url, applicationName: 'dry-test' });
  let queries = 0;
  const counted = { query: (q: pg.QueryConfig) => (queries++, pool.query(q)) } as unknown as pg.Pool;
  try {
    let heard: number | undefined = 0;
    let t = 0;
    const dry = new DryQueue(counted, () => heard, () => t);
    await dry.foundNothing(dry.mark());
    assert.equal(dry.isDry(), true, 'no sweep at all: dry');
    assert.equal(dry.skipped, 1);
    heard = 1;
    assert.equal(dry.isDry(), false, 'a jobs wake ends it');
    await dry.foundNothing(dry.mark());
    assert.equal(dry.isDry(), true);
    t += DRY_RECHECK_MS;
    assert.equal(dry.isDry(), false, 'trusted for DRY_RECHECK_MS only');
    await dry.foundNothing(dry.mark());
    dry.forget();
    assert.equal(dry.isDry(), false, 'this engine queued work');

    // This engine queued work while the check ran (its snapshot may lack it): the answer is not remembered.
    let release: (() => void) | undefined;
    const slow = { query: (q: pg.QueryConfig) => new Promise((r) => (release = () => r(pool.query(q)))) } as unknown as pg.Pool;
    const mine = new DryQueue(slow, () => heard, () => t);
    const checking = mine.foundNothing(mine.mark());
    mine.forget();
    release!();
    await checking;
    assert.equal(mine.isDry(), false);

    // A wake heard while the pick or the check ran: the memo holds the count from before the pick, so it does not match.
    let reads = 0;
    const racing = new DryQueue(counted, () => (reads++ === 0 ? 5 : 6), () => t);
    await racing.foundNothing(racing.mark());
    assert.equal(racing.isDry(), false);

    const deaf = new DryQueue(counted, () => undefined, () => t);
    queries = 0;
    await deaf.foundNothing(deaf.mark());
    assert.equal(deaf.isDry(), false, 'not listening: nothing remembered');
    assert.equal(queries, 0, 'nor asked');

    // A queued job, even one no node may take now (a paused sweep), keeps the queue from being dry; that answer stands for
    // DRY_RECHECK_MS, and empty picks at once share one check.
    await engine.createSweep(sweep('paused'), newJobs('paused', 1), 'sw-paused');
    await engine.setPaused('sw-paused', true);
    heard = 2;
    const held = new DryQueue(counted, () => heard, () => t);
    queries = 0;
    await Promise.all([held.foundNothing(held.mark()), held.foundNothing(held.mark())]);
    assert.equal(held.isDry(), false);
    assert.equal(queries, 1, 'one check for both');
    await held.foundNothing(held.mark());
    assert.equal(queries, 1, 'not asked again within DRY_RECHECK_MS');
    t += DRY_RECHECK_MS;
    await held.foundNothing(held.mark());
    assert.equal(queries, 2);

    // The check failing leaves nothing remembered and throws nothing: the memo only saves picks.
    const broken = new DryQueue({ query: () => Promise.reject(new Error('away')) } as unknown as pg.Pool, () => heard, () => t);
    await broken.foundNothing(broken.mark());
    assert.equal(broken.isDry(), false);
  } finally {
    await pool.end();
    await engine.close();
  }
});

test('a replica whose queue ran dry leases again what any replica queues next: a new sweep, a requeued job, a resumed sweep', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('dry_engine');
  // A dry answer trusted for a minute: a box stalled for a second between two picks must not end it (the counts below).
  const a = await PostgresEngine.open({ url, dryRecheckMs: 60_000 });
  const b = await PostgresEngine.open({ url });
  const wakes: Wake[] = [];
  let woken: (() => void) | undefined;
  const stop = await a.subscribe((w) => {
    wakes.push(w);
    if (w.jobs) woken?.();
  });
  const wake = () => new Promise<void>((r) => (woken = r));
  try {
    // Each wake awaited before the picks that follow: one arriving late would end a memo the test counts on.
    let next = wake();
    await b.createSweep(sweep('one'), newJobs('one', 1), 'sw-one');
    await next;
    const first = (await a.leaseNext('n1', PROC, 30_000))!;
    assert.equal(first.id.startsWith('sw-one'), true);
    assert.equal(await a.leaseNext('n1', PROC, 30_000), undefined);
    assert.equal(a.dryPicks(), 0);
    assert.equal(await a.leaseNext('n1', PROC, 30_000), undefined);
    assert.equal(a.dryPicks(), 1, 'dry now: the second pick was not asked of the database');

    next = wake();
    await b.createSweep(sweep('two'), newJobs('two', 1), 'sw-two');
    await next;
    const second = (await a.leaseNext('n1', PROC, 30_000))!;
    assert.equal(second.sweep_id, 'sw-two', 'another replica\'s new sweep');
    assert.equal(await a.leaseNext('n1', PROC, 30_000), undefined);

    assert.equal(await a.leaseNext('n1', PROC, 30_000), undefined);
    await a.requeue([second.id], 'asked');
    assert.equal((await a.leaseNext('n2', PROC, 30_000))?.id, second.id, 'its own requeue, at once (before its wake comes back)');

    await b.createSweep(sweep('three'), newJobs('three', 1), 'sw-three');
    await b.setPaused('sw-three', true);
    assert.equal(await a.leaseNext('n3', PROC, 30_000), undefined, 'paused: queued, not pickable');
    next = wake();
    await b.setPaused('sw-three', false);
    await next;
    assert.equal((await a.leaseNext('n3', PROC, 30_000))?.sweep_id, 'sw-three', 'resumed on another replica');
  } finally {
    await stop();
    await a.close();
    await b.close();
  }
});

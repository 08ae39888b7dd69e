import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { postgresMissing, startPostgres, type PostgresServer } from '@nightshift/devfarm';
import { createPool } from './postgres-pool.js';
import { DRY_RECHECK_MS, DryQueue } from './postgres-dry-queue.js';
import { PostgresEngine } from './postgres.js';
import type { Wake } from './engine.js';

let server: PostgresServer | undefined;
const skip = postgresMissing();
if (!skip) {
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.close();
  });
}

const JOB = (tag: string, index: number) => ({ index, renderKey: `rk-${tag}-${index}`, prompt: 'p', seed: index, params: {}, axes: {}, backend: 'procedural', model: 'm1', minVramMb: 0 });
const CAPS = { backends: ['procedural'], models: [], vramMb: 8_192 };
const sweep = (name: string) => ({ name, spec: {}, priority: 0, backend: 'procedural', model: 'm1' });

test('a dry queue is remembered only when no sweep has a queued job and no wake came meanwhile; a wake, the recheck time or not listening ends it', { skip, timeout: 60_000 }, async () => {
  const url = await server!.createDatabase('dry_queue');
  const engine = await PostgresEngine.open({ url }); // the schema
  const pool = createPool({ url, applicationName: 'dry-test' });
  try {
    let heard: number | undefined = 0;
    let t = 0;
    const dry = new DryQueue(pool, () => heard, () => t);
    await dry.foundNothing(dry.mark());
    assert.equal(dry.isDry(), true, 'no sweep at all: dry');
    heard = 1;
    assert.equal(dry.isDry(), false, 'a jobs wake ends it');
    await dry.foundNothing(dry.mark());
    t += DRY_RECHECK_MS;
    assert.equal(dry.isDry(), false, 'trusted for DRY_RECHECK_MS only');

    // A wake heard while the check ran: what it announced may be missing from the check.
    let reads = 0;
    const racing = new DryQueue(pool, () => (reads++ === 0 ? 5 : 6), () => t);
    await racing.foundNothing(racing.mark());
    assert.equal(racing.isDry(), false);

    const deaf = new DryQueue(pool, () => undefined, () => t);
    await deaf.foundNothing(deaf.mark());
    assert.equal(deaf.isDry(), false, 'not listening: nothing remembered');

    // A queued job, even one no node may take yet (a paused sweep), keeps the queue from being dry.
    await engine.createSweep(sweep('paused'), [JOB('paused', 0)], 'sw-paused');
    await engine.setPaused('sw-paused', true);
    heard = 2;
    await dry.foundNothing(dry.mark());
    assert.equal(dry.isDry(), false);
  } finally {
    await pool.end();
    await engine.close();
  }
});

test('a replica whose queue ran dry leases again what any replica queues next: a new sweep, a requeued job, a resumed sweep', { skip, timeout: 60_000 }, async () => {
  const url = await server!.createDatabase('dry_engine');
  const a = await PostgresEngine.open({ url });
  const b = await PostgresEngine.open({ url });
  const wakes: Wake[] = [];
  let woken: (() => void) | undefined;
  const stop = await a.subscribe((w) => {
    wakes.push(w);
    if (w.jobs) woken?.();
  });
  const wake = () => new Promise<void>((r) => (woken = r));
  try {
    await b.createSweep(sweep('one'), [JOB('one', 0)], 'sw-one');
    const first = (await a.leaseNext('n1', CAPS, 30_000))!;
    assert.equal(first.id.startsWith('sw-one'), true);
    assert.equal(await a.leaseNext('n1', CAPS, 30_000), undefined, 'dry now');

    let next = wake();
    await b.createSweep(sweep('two'), [JOB('two', 0)], 'sw-two');
    await next;
    const second = (await a.leaseNext('n1', CAPS, 30_000))!;
    assert.equal(second.sweep_id, 'sw-two', 'another replica\'s new sweep');
    assert.equal(await a.leaseNext('n1', CAPS, 30_000), undefined);

    next = wake();
    await a.requeue([second.id], 'asked');
    await next;
    assert.equal((await a.leaseNext('n2', CAPS, 30_000))?.id, second.id, 'its own requeue');

    await b.createSweep(sweep('three'), [JOB('three', 0)], 'sw-three');
    await b.setPaused('sw-three', true);
    assert.equal(await a.leaseNext('n3', CAPS, 30_000), undefined, 'paused: queued, not pickable');
    next = wake();
    await b.setPaused('sw-three', false);
    await next;
    assert.equal((await a.leaseNext('n3', CAPS, 30_000))?.sweep_id, 'sw-three', 'resumed on another replica');
  } finally {
    await stop();
    await a.close();
    await b.close();
  }
});

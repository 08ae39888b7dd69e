import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { postgresForFile } from '@nightshift/devfarm';
import { createPool } from './postgres-pool.js';
import { LeaseNotices } from './postgres-lease-notices.js';
import { PostgresEngine } from './postgres.js';
import { CHANGES_CHANNEL } from './postgres-schema.js';
import { PROC, newJobs } from './conformance-helpers.js';
import { jobId as jobIdOf } from '../store/rows.js';

const { skip, server } = postgresForFile();

const sweep = (name: string) => ({ name, spec: {}, priority: 0, backend: 'procedural', model: 'm1' });

/** A LISTENing session: what it heard on the changes channel, and a fence (notifications arrive in commit order). */
async function listener(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const heard: string[] = [];
  client.on('notification', (m) => {
    if (m.channel === CHANGES_CHANNEL) heard.push(m.payload ?? '');
  });
  await client.query(`LISTEN ${CHANGES_CHANNEL}`);
  let fences = 0;
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise((r) => setTimeout(r, 5));
  };
  return {
    heard,
    /** Everything heard up to a notification committed now, the fence itself left out. */
    async fence(): Promise<string[]> {
      const f = `fence:${++fences}`;
      await client.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, f]);
      await until(() => heard.includes(f));
      return heard.splice(0).filter((p) => p !== f);
    },
    until,
    end: () => client.end(),
  };
}

test("a pick's own transaction notifies no change; every other change of a job's state still does, in its transaction", { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('lease_trigger');
  const engine = await PostgresEngine.open({ url }); // the schema
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const l = await listener(url);
  try {
    await engine.createSweep(sweep('s'), newJobs('lt', 3), 'sw-lt');
    await admin.query(`UPDATE sweeps SET status = 'running' WHERE id = 'sw-lt'`);
    await l.fence();
    await admin.query(`UPDATE jobs SET state = 'leased', node_id = 'n1', lease_expires_at = 9e15 WHERE id = $1`, [jobIdOf('sw-lt', 0)]);
    assert.deepEqual(await l.fence(), [], 'queued to leased: not notified by the trigger');
    await admin.query(`UPDATE jobs SET state = 'done', lease_expires_at = NULL WHERE id = $1`, [jobIdOf('sw-lt', 0)]);
    assert.deepEqual(await l.fence(), ['sweep:sw-lt'], 'leased to done: notified');
    await admin.query(`UPDATE jobs SET state = 'leased', node_id = 'n1', lease_expires_at = 9e15 WHERE id = $1`, [jobIdOf('sw-lt', 1)]);
    await l.fence();
    await admin.query(`UPDATE jobs SET state = 'queued', node_id = NULL, lease_expires_at = NULL WHERE id = $1`, [jobIdOf('sw-lt', 1)]);
    assert.deepEqual(await l.fence(), ['sweep:sw-lt'], 'leased back to queued: notified');
  } finally {
    await l.end();
    await admin.end();
    await engine.close();
  }
});

test('lease notices: one per sweep per interval, sent after the lease; a pick itself notifies nothing; closing the engine sends what is pending and takes no more; a failed send is dropped', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('lease_notices');
  // Notices wait a minute here: only close() sends the engine's, so what a fence finds is exactly what was sent.
  const engine = await PostgresEngine.open({ url, leaseNoticeMs: 60_000 });
  const pool = createPool({ url, applicationName: 'lease-notices-test' });
  const l = await listener(url);
  try {
    // Many leases of two sweeps within the interval, one notification each.
    const notices = new LeaseNotices(pool, 60_000);
    for (const s of ['sw-b', 'sw-a', 'sw-b', 'sw-b']) notices.leased(s);
    assert.deepEqual(await l.fence(), [], 'nothing before the interval ends');
    await notices.flush();
    assert.deepEqual(await l.fence(), ['sweep:sw-a', 'sweep:sw-b']);
    await notices.flush();
    assert.deepEqual(await l.fence(), [], 'nothing pending, nothing sent');
    const quick = new LeaseNotices(pool, 20);
    quick.leased('sw-c');
    await l.until(() => l.heard.includes('sweep:sw-c'));
    assert.deepEqual(await l.fence(), ['sweep:sw-c'], 'sent on its own once the interval is over');
    // Flushes one after another: the last waits for the sends before it (the engine closes its pool right after).
    quick.leased('sw-d');
    const first = quick.flush();
    quick.leased('sw-e');
    await quick.close();
    await first;
    assert.deepEqual(await l.fence(), ['sweep:sw-d', 'sweep:sw-e']);
    quick.leased('sw-f');
    await quick.flush();
    assert.deepEqual(await l.fence(), [], 'closed: takes no more');

    // Through the engine: the sweep's first lease is told by its row (queued to running), in the pick's transaction.
    await engine.createSweep(sweep('e'), newJobs('le', 3), 'sw-le');
    await l.fence();
    assert.ok(await engine.leaseNext('n1', PROC, 60_000));
    assert.deepEqual(await l.fence(), ['sweep:sw-le'], 'the sweep started running');
    // Later leases change no sweep row: nothing in their own transactions, one notice for both once sent.
    assert.ok(await engine.leaseNext('n2', PROC, 60_000));
    assert.ok(await engine.leaseNext('n3', PROC, 60_000));
    assert.deepEqual(await l.fence(), [], 'the picks notified nothing themselves');
    await engine.close(); // sends what is pending
    assert.deepEqual(await l.fence(), ['sweep:sw-le']);

    // The database gone: dropped, never thrown.
    const gone = createPool({ url, applicationName: 'lease-notices-gone' });
    await gone.end();
    const failing = new LeaseNotices(gone, 60_000);
    failing.leased('sw-x');
    await failing.flush();
    assert.deepEqual(await l.fence(), []);
  } finally {
    await l.end();
    await pool.end();
    await engine.close();
  }
});

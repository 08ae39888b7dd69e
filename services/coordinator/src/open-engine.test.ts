/**
 * openStore on PostgreSQL takes its pool size from NIGHTSHIFT_DATABASE_POOL_SIZE:
 * with every query held up behind a lock, the replica opens exactly that
 * many connections and queues the rest of its queries on them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { createLogger, loadConfig } from '@nightshift/common';
import { postgresMissing, startPostgres, tempDir } from '@nightshift/devfarm';
import { openStore, replicaName } from './open-engine.js';
import { MAX_APPLICATION_NAME_BYTES, PostgresEngine } from './store-engine/postgres.js';

const skip = postgresMissing();

test('a replica\'s name fits what PostgreSQL keeps of an application_name, whatever the hostname', () => {
  for (const host of ['', 'box', 'nightshift-coordinator-5f7d8c9b7d-8xk2p', 'h'.repeat(300), 'héllo wörld/../x']) {
    const name = replicaName(host);
    assert.ok(Buffer.byteLength(name) <= MAX_APPLICATION_NAME_BYTES, `${name}: ${Buffer.byteLength(name)} bytes`);
    assert.match(name, /^nightshift-coordinator-[A-Za-z0-9.-]*-[0-9a-f]{8}$/);
  }
});

test('NIGHTSHIFT_DATABASE_POOL_SIZE bounds the connections a PostgreSQL replica opens', { skip, timeout: 60_000 }, async () => {
  const server = await startPostgres();
  const tmp = tempDir('nightshift-pool-size-');
  try {
    const url = await server.createDatabase('pool_size');
    const config = loadConfig({ NIGHTSHIFT_DATABASE_URL: url, NIGHTSHIFT_DATABASE_POOL_SIZE: '3', NIGHTSHIFT_DATA_DIR: tmp.dir });
    const { engine } = await openStore(config, createLogger('test', 'silent'));
    const admin = new pg.Client({ connectionString: url });
    const locker = new pg.Client({ connectionString: url });
    await admin.connect();
    await locker.connect();
    try {
      assert.ok(engine instanceof PostgresEngine);
      const replica = engine.applicationName;
      const sessions = async (waiting: boolean) =>
        (await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 ${waiting ? "AND wait_event_type = 'Lock'" : ''}`, [replica])).rows[0]!.n;
      // Every read of sweeps waits behind this lock, each holding the connection it got (held by
      // a client of its own: pg_stat_activity stays one snapshot inside a transaction).
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE sweeps IN ACCESS EXCLUSIVE MODE');
      const reads = Array.from({ length: 10 }, (_, i) => engine.getSweep(`sw-${i}`));
      while ((await sessions(true)) < 3) await delay(10);
      await locker.query('COMMIT');
      assert.deepEqual(await Promise.all(reads), Array.from({ length: 10 }, () => undefined));
      // Ten reads at once went through three connections, which the pool keeps open (idle) afterwards.
      assert.equal(await sessions(false), 3);
    } finally {
      await locker.end();
      await admin.end();
      await engine.close();
    }
  } finally {
    await server.close();
    tmp.cleanup();
  }
});

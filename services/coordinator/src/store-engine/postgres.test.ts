import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { postgresForFile } from '@nightshift/devfarm';
import { storeEngineConformance } from './conformance.js';
import { withEngineAndAdmin } from './postgres-test-helpers.js';
import { report } from './conformance-helpers.js';
import { ANALYZE_AFTER_JOBS, EXPIRE_COPIES_SQL, PostgresEngine } from './postgres.js';
import { CapReached, QuotaRaced } from './engine.js';
import type { Wake } from './engine.js';
import { WakeListener } from './postgres-wake.js';
import { createPool, inTransaction, retriesOf as retriesOfPool } from './postgres-pool.js';
import { MIGRATIONS } from './postgres-schema.js';

let databases = 0;
const { skip, server } = postgresForFile();

/** Ends every session of an engine from outside, as when its replica's process dies. */
async function terminateSessions(url: string, applicationName: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
    const pids = rows.map((r) => r.pid);
    await admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
    // Terminating only signals them: wait until those sessions have left pg_stat_activity, as a dead replica's have (a reconnect is a new one).
    while ((await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1)', [pids])).rows.length) await delay(10);
  } finally {
    await admin.end();
  }
}

storeEngineConformance(
  'postgres',
  {
    async fresh(clock) {
      const url = await server().createDatabase(`conformance_${++databases}`);
      // A big sweep's listeners run to their end before its next part, however slow the box (sweep-parts.ts).
      const open = () => PostgresEngine.open({ url, now: () => clock.t, maxAttempts: 3, blocklistAfter: 3, poolSize: 8, firstFillsWaitMs: 60_000 });
      const engine = await open();
      const engines: PostgresEngine[] = [engine];
      return {
        engine,
        async another() {
          const other = await open();
          engines.push(other);
          return other;
        },
        async kill(e) {
          const victim = engines.find((x) => x === e);
          if (!victim) throw new Error('not an engine of this fixture');
          await terminateSessions(server().url, victim.applicationName);
        },
        async close() {
          for (const e of engines) await e.close();
        },
      };
    },
  },
  { skip },
);

test('wake-ups survive a lost listening connection: it reconnects, wakes for both (a notification may have been missed) and tells change listeners to resync, and hears the next commit', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('wake_reconnect');
  const listening = await PostgresEngine.open({ url });
  const writer = await PostgresEngine.open({ url });
  try {
    const heard: Wake[] = [];
    let waiting: { pred: (w: Wake) => boolean; resolve: () => void } | undefined;
    const until = (pred: (w: Wake) => boolean) => new Promise<void>((resolve) => (waiting = { pred, resolve }));
    await listening.subscribe((w) => {
      heard.push(w);
      if (waiting?.pred(w)) waiting.resolve();
    });
    let resynced!: () => void;
    const resync = new Promise<void>((resolve) => (resynced = resolve));
    await listening.subscribeChanges((c) => c.type === 'resync' && resynced());
    const both = until((w) => w.jobs && w.outbox);
    await terminateSessions(url, listening.applicationName);
    await both;
    await resync;
    const jobs = until((w) => w.jobs && !w.outbox);
    await writer.createSweep({ name: 'after', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [], 'sw-after');
    await writer.createSweep(
      { name: 'after2', spec: {}, priority: 0, backend: 'procedural', model: 'm1' },
      [{ index: 0, renderKey: 'rk-after', prompt: 'p', seed: 1, params: {}, axes: {}, backend: 'procedural', model: 'm1', minVramMb: 0 }],
      'sw-after2',
    );
    await jobs;
    assert.ok(heard.length >= 2);
  } finally {
    await listening.close();
    await writer.close();
  }
});

test('a starting replica leaves online the nodes of replicas still running', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('nodes_replicas');
  const running = await PostgresEngine.open({ url });
  const starting = await PostgresEngine.open({ url });
  try {
    // A replica keeps its listening session open while it runs (its pool's may idle out).
    await running.subscribe(() => {});
    await running.nodes.upsertNode('n-running', 'a', {});
    await starting.nodes.upsertNode('n-starting', 'b', {});
    await starting.nodes.markAllNodesOffline();
    assert.deepEqual((await starting.nodes.listNodes()).map((n) => [n.id, n.status]), [
      ['n-running', 'online'],
      ['n-starting', 'offline'],
    ]);
  } finally {
    await running.close();
    await starting.close();
  }
});

/** Resolves once a session of `applicationName` waits on a row lock (polled: the wait is an event PostgreSQL shows, not a timing guess). */
async function waitingOnLock(watcher: pg.Client, applicationName: string): Promise<void> {
  while (!(await watcher.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [applicationName])).rows.length) await delay(5);
}

const JOB = (tag: string, index: number) => ({ index, renderKey: `rk-${tag}-${index}`, prompt: 'p', seed: index, params: {}, axes: {}, backend: 'procedural', model: 'm1', minVramMb: 0 });
const CAPS = { backends: ['procedural'], models: [], vramMb: 8_192 };

test('cancelSweep takes locks in the order completions do (jobs, then their sweep): a cancel waiting on a completion that then settles the sweep is no deadlock', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('lock_order_forced');
  const completer = await PostgresEngine.open({ url });
  const canceller = await PostgresEngine.open({ url });
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  // pg_stat_activity is read once per transaction: the watcher is a session outside the blocking one.
  const watcher = new pg.Client({ connectionString: url });
  await watcher.connect();
  try {
    await completer.createSweep({ name: 'last', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [JOB('last', 0)], 'sw-last');
    const job = (await completer.leaseNext('n1', CAPS, 30_000))!;
    // Hold the completion after it locked its job (its counter trigger waits on these rows: every shard, added uncommitted here), so the cancel starts in between.
    await admin.query('BEGIN');
    await admin.query(`INSERT INTO sweep_count_shards (sweep_id, state, shard, n) SELECT 'sw-last', 'leased', g, 0 FROM generate_series(0, 15) g ON CONFLICT DO NOTHING`);
    await admin.query(`SELECT * FROM sweep_count_shards WHERE sweep_id = 'sw-last' AND state = 'leased' FOR UPDATE`);
    const completing = completer.completeJob(job.id, 'n1', report(job));
    await waitingOnLock(watcher, completer.applicationName);
    const cancelling = canceller.cancelSweep('sw-last');
    await waitingOnLock(watcher, canceller.applicationName);
    await admin.query('COMMIT');
    // The completion now settles the sweep (it was the last job): it locks the sweep, which the cancel must not hold.
    assert.equal((await completing).accepted, true);
    assert.deepEqual(await cancelling, [], 'the job finished before the cancel reached it');
    assert.equal((await completer.getSweep('sw-last'))!.status, 'done');
    assert.deepEqual(completer.retries(), {}, 'no transaction was aborted and retried');
    assert.deepEqual(canceller.retries(), {}, 'no transaction was aborted and retried');
  } finally {
    await admin.end();
    await watcher.end();
    await completer.close();
    await canceller.close();
  }
});

test('cancels racing picks and completions on two replicas never deadlock (no transaction retried, no pick failed), 40 rounds', { skip, timeout: 120_000 }, async () => {
  const url = await server().createDatabase('lock_order_race');
  const a = await PostgresEngine.open({ url });
  const b = await PostgresEngine.open({ url });
  try {
    let leases = 0;
    let completions = 0;
    for (let round = 0; round < 40; round++) {
      // A sweep whose only job is leased (its completion settles the sweep) and a queued sweep (its first pick starts it).
      await a.createSweep({ name: 'c', spec: {}, priority: 1, backend: 'procedural', model: 'm1' }, [JOB(`c${round}`, 0)], `sw-c${round}`);
      const held = (await a.leaseNext(`n${round}`, CAPS, 30_000))!;
      assert.equal(held.sweep_id, `sw-c${round}`);
      await a.createSweep({ name: 'q', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [JOB(`q${round}`, 0), JOB(`q${round}`, 1)], `sw-q${round}`);
      const [done, picked, , , picked2] = await Promise.all([
        a.completeJob(held.id, `n${round}`, report(held)),
        a.leaseNext(`m${round}`, CAPS, 30_000),
        b.cancelSweep(`sw-c${round}`),
        b.cancelSweep(`sw-q${round}`),
        b.leaseNext(`k${round}`, CAPS, 30_000),
      ]);
      if (done.accepted) completions++;
      else assert.equal((await a.getJob(held.id))!.state, 'cancelled', 'a completion refused only because the cancel came first');
      leases += [picked, picked2].filter(Boolean).length;
      for (const id of [`sw-c${round}`, `sw-q${round}`]) assert.ok(['done', 'cancelled'].includes((await a.getSweep(id))!.status), `${id} ended`);
    }
    assert.deepEqual(a.retries(), {}, 'no transaction of replica a was retried');
    assert.deepEqual(b.retries(), {}, 'no transaction of replica b was retried');
    // Not vacuous: the races did lease and complete (how many depends on who won each).
    assert.ok(leases + completions > 0, `${leases} leases, ${completions} completions`);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a listening connection whose LISTEN fails is ended, not left open (each reconnect try would leak a session)', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('listen_fails');
  const applicationName = 'nightshift-listen-fails';
  const made: pg.Client[] = [];
  let ends = 0;
  // A real session whose LISTEN the server refuses (a syntax error in place of the statement): connect succeeded, LISTEN did not.
  const refusingListen = (conn: { url: string; applicationName: string }) => {
    const client = new pg.Client({ connectionString: conn.url, application_name: conn.applicationName });
    const query = client.query.bind(client) as (text: string) => Promise<pg.QueryResult>;
    Object.assign(client, { query: (text: string) => query(text.startsWith('LISTEN') ? 'LISTEN (' : text) });
    client.on('end', () => ends++);
    made.push(client);
    return client;
  };
  const wakes = new WakeListener({ url, applicationName }, refusingListen);
  const watcher = new pg.Client({ connectionString: url });
  await watcher.connect();
  try {
    await assert.rejects(wakes.add(() => {}), /syntax error/);
    assert.equal(made.length, 1);
    assert.equal(ends, 1, 'the connection was ended before the failure was reported');
    // The server sees it go too: no session of that name left (polled until its backend exits, which follows the client's end).
    while ((await watcher.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [applicationName])).rows.length) await delay(5);
  } finally {
    await wakes.close();
    await watcher.end();
  }
});

test('a big sweep refreshes the planner statistics of jobs (the pick walked new rows until then), a small one does not', { skip, timeout: 120_000 }, async () => {
  await withEngineAndAdmin(server(), 'analyze_big_sweeps', async (engine, admin) => {
    // The test cluster's autovacuum could analyze on its own: it is kept off this table.
    await admin.query('ALTER TABLE jobs SET (autovacuum_enabled = false)');
    const analyzed = async () => (await admin.query<{ n: string }>(`SELECT analyze_count::text AS n FROM pg_stat_user_tables WHERE relname = 'jobs'`)).rows[0]!.n;
    const jobsOf = (tag: string, n: number) =>
      Array.from({ length: n }, (_, i) => ({ index: i, renderKey: `${tag}${i.toString(16)}`.padEnd(64, '0'), prompt: `p ${i}`, seed: i, params: { width: 64, height: 64 }, axes: {}, backend: 'procedural', model: 'procedural-v1', minVramMb: 0 }));
    const sweep = (name: string) => ({ name, spec: {}, priority: 0, backend: 'procedural', model: 'procedural-v1' });
    const before = await analyzed();
    await engine.createSweep(sweep('small'), jobsOf('a', 100));
    assert.equal(await analyzed(), before, 'a small sweep leaves the statistics to autovacuum');
    await engine.createSweep(sweep('big'), jobsOf('b', ANALYZE_AFTER_JOBS));
    assert.equal(Number(await analyzed()), Number(before) + 1);
    // What the statistics are for: the planner now knows the rows are there.
    const { rows } = await admin.query<{ n: number }>(`SELECT reltuples::int AS n FROM pg_class WHERE relname = 'jobs'`);
    assert.ok(rows[0]!.n >= ANALYZE_AFTER_JOBS, `the planner counts ${rows[0]!.n} rows`);
    // And that hardly any job is a straggler copy: the lease tick's end of lapsed copies reads jobs_copy, not every job.
    const plan = JSON.stringify((await admin.query(`EXPLAIN (FORMAT JSON) ${EXPIRE_COPIES_SQL}`, [Date.now()])).rows[0]);
    assert.match(plan, /"Index Name":"jobs_copy"/, plan);
    assert.doesNotMatch(plan, /"Node Type":"Seq Scan"/, plan);
  });
});

test('a shared secret is made once per database: every replica, asking at once or later, gets the same 32 bytes; another name gets another', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('shared_secrets');
  const [a, b] = await Promise.all([PostgresEngine.open({ url }), PostgresEngine.open({ url })]);
  try {
    const first = await Promise.all([a.sharedSecret('share-links'), b.sharedSecret('share-links'), a.sharedSecret('share-links')]);
    assert.equal(first[0]!.length, 32);
    for (const s of first) assert.ok(s.equals(first[0]!));
    assert.ok((await b.sharedSecret('share-links')).equals(first[0]!), 'the same later');
    assert.ok(!(await a.sharedSecret('other')).equals(first[0]!));
  } finally {
    await a.close();
    await b.close();
  }
});

/**
 * Two replicas' writes held at the same point: a third session locks `table` against inserts, `create`
 * runs on both engines until both wait on a lock, then the lock goes. Returns how each ended.
 */
async function heldTogether(blocker: pg.Client, table: string, engines: PostgresEngine[], create: (e: PostgresEngine) => Promise<unknown>): Promise<PromiseSettledResult<unknown>[]> {
  await blocker.query('BEGIN');
  await blocker.query(`LOCK TABLE ${table} IN SHARE ROW EXCLUSIVE MODE`);
  const all = Promise.allSettled(engines.map(create));
  // Inside its transaction a session reads pg_stat_activity from a snapshot of the backends as they were at its first read:
  // one a replica connects afterwards (a new pooled connection) would never show. The snapshot is dropped before each read.
  const waiting = async () => {
    await blocker.query('SELECT pg_stat_clear_snapshot()');
    return (await blocker.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0]!.n;
  };
  while ((await waiting()) < engines.length) await delay(10);
  await blocker.query('COMMIT');
  return all;
}

test("a daily quota held by two replicas' submissions at the same point: the one that waited counts the other and is refused", { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('quota_race');
  const [a, b] = await Promise.all([PostgresEngine.open({ url }), PostgresEngine.open({ url })]);
  const blocker = new pg.Client({ connectionString: url });
  await blocker.connect();
  try {
    const quota = { imagesPerDay: 5, since: 0 };
    // Both submissions stop where they store their jobs, so neither commits before the other has started.
    const results = await heldTogether(blocker, 'jobs', [a, b], (e) =>
      e.createSweep({ name: e === a ? 'e' : 'f', spec: {}, priority: 0, backend: 'procedural', model: 'm1', owner: 'erin', quota }, [0, 1, 2].map((i) => JOB(e === a ? 'qe' : 'qf', i))),
    );
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected'], 'exactly one passes');
    assert.ok(results.some((r) => r.status === 'rejected' && r.reason instanceof QuotaRaced));
    assert.equal(await a.people.imagesSubmittedSince('erin', 0), 3);
  } finally {
    await blocker.end();
    await a.close();
    await b.close();
  }
});

test('the webhook and share-link caps held by two replicas at the same point: the one that waited counts the other and is refused', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('cap_race');
  const [a, b] = await Promise.all([PostgresEngine.open({ url }), PostgresEngine.open({ url })]);
  const blocker = new pg.Client({ connectionString: url });
  await blocker.connect();
  /** Exactly one of two creations held together may pass a cap of 1. */
  const race = async (table: string, create: (e: PostgresEngine) => Promise<unknown>) => {
    const results = await heldTogether(blocker, table, [a, b], create);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected'], `${table}: exactly one passes`);
    assert.ok(results.some((r) => r.status === 'rejected' && r.reason instanceof CapReached));
  };
  try {
    await race('webhooks', (e) => e.webhooks.createWebhook({ url: 'https://example.test/h', events: ['sweep.finished'], secret: 's', format: 'json', owner: 'erin', max: 1 }));
    assert.equal((await a.webhooks.listWebhooks()).length, 1);
    await race('shares', (e) => e.shares.create({ title: 't', renderKeys: ['rk'], expiresAt: Date.now() + 60_000, owner: 'erin', maxLive: 1 }));
    assert.equal((await a.shares.list('erin')).length, 1);
  } finally {
    await blocker.end();
    await a.close();
    await b.close();
  }
});

/**
 * A submission fed by a generator whose transaction the database aborts once as a deadlock (40P01, which
 * inTransaction runs again) at its first write to `table`: a test trigger raises it on the first such statement
 * only (counted by a sequence, which no rollback undoes). A real deadlock gives the same error; forcing it
 * keeps the test off the clock.
 */
async function abortedOnceAt(name: string, table: string, body: (r: { outcome: unknown; made: number; engine: PostgresEngine; admin: pg.Client }) => Promise<void>): Promise<void> {
  await withEngineAndAdmin(server(), name, async (engine, admin) => {
    await admin.query(`
      CREATE SEQUENCE abort_once;
      CREATE FUNCTION abort_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('abort_once') = 1 THEN
          RAISE EXCEPTION 'deadlock detected (forced by the test)' USING ERRCODE = '40P01';
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER abort_once BEFORE INSERT ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION abort_once();`);
    let made = 0;
    function* jobs() {
      for (let i = 0; i < 3; i++, made++) yield JOB(name, i);
    }
    const outcome = await engine.createSweep({ name, spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, jobs(), `sw-${name}`).then(
      (sweep) => sweep,
      (err: unknown) => err,
    );
    await body({ outcome, made, engine, admin });
  });
}

test('a sweep fed by a generator whose transaction was aborted (a deadlock) before it took a job is stored whole on the second try', { skip, timeout: 60_000 }, async () => {
  // Its sweep row: written before its jobs are taken.
  await abortedOnceAt('generator_retry_early', 'sweeps', async ({ outcome, made, engine }) => {
    assert.equal((outcome as { total?: number }).total, 3, 'stored');
    assert.equal(made, 3);
    assert.deepEqual(engine.retries(), { '40P01': 1 }, 'run again once');
    assert.deepEqual(await engine.counts('sw-generator_retry_early'), { queued: 3, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 });
  });
});

test('a sweep fed by a generator whose transaction was aborted (a deadlock) after its jobs were taken is refused with a clear error, not stored short', { skip, timeout: 60_000 }, async () => {
  // The outbox: its sweep.created event is written after its jobs.
  await abortedOnceAt('generator_retry_late', 'outbox', async ({ outcome, made, engine, admin }) => {
    assert.ok(outcome instanceof Error, 'refused');
    assert.match(outcome.message, /storing the sweep was interrupted .* its jobs cannot be made again: submit it again/);
    assert.equal(made, 3, 'its jobs were made once, by the attempt that was aborted');
    assert.deepEqual(engine.retries(), { '40P01': 1 });
    assert.equal(await engine.getSweep('sw-generator_retry_late'), undefined, 'nothing stored');
    assert.equal((await admin.query(`SELECT count(*)::int AS n FROM jobs`)).rows[0].n, 0);
  });
});

test('pooled connections prepare each parameterized statement once, by name; one without parameters stays unnamed', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('named_statements');
  // One connection, so that its prepared statements are the ones listed.
  const pool = createPool({ url, applicationName: 'named-statements', max: 1 });
  try {
    for (let i = 0; i < 3; i++) assert.equal((await pool.query<{ n: number }>('SELECT $1::int + 1 AS n', [i])).rows[0]!.n, i + 1);
    assert.equal((await inTransaction(pool, (c) => c.query<{ t: string }>('SELECT $1::text AS t', ['in a transaction']))).rows[0]!.t, 'in a transaction');
    await pool.query('SELECT 1 AS unparameterized');
    const { rows } = await pool.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements ORDER BY statement');
    assert.deepEqual(rows.map((r) => r.statement), ['SELECT $1::int + 1 AS n', 'SELECT $1::text AS t']);
  } finally {
    await pool.end();
  }
});

test('a statement prepared before another replica added a column runs again, on a fresh connection: through the pool and in a transaction', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('stale_plans');
  const pool = createPool({ url, applicationName: 'stale-plans', max: 1 });
  const migrator = new pg.Client({ connectionString: url });
  await migrator.connect();
  const read = (q: { query: pg.Pool['query'] }) => q.query<Record<string, unknown>>('SELECT * FROM t WHERE id = $1', [1]);
  try {
    await migrator.query('CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)');
    assert.deepEqual((await read(pool)).rows, [{ id: 1 }]);
    await migrator.query('ALTER TABLE t ADD COLUMN a INTEGER NOT NULL DEFAULT 2');
    assert.deepEqual((await read(pool)).rows, [{ id: 1, a: 2 }], 'through the pool');
    await inTransaction(pool, (c) => read(c));
    await migrator.query('ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 3');
    assert.deepEqual((await inTransaction(pool, (c) => read(c))).rows, [{ id: 1, a: 2, b: 3 }], 'in a transaction');
    assert.deepEqual(retriesOfPool(pool), {}, 'not counted as a deadlock or serialization retry');
  } finally {
    await migrator.end();
    await pool.end();
  }
});

test('settleIdleSweeps settles a sweep left open with every job ended (its replica died between the last commit and the settle); open and empty sweeps stay as they are', { skip, timeout: 60_000 }, async () => {
  await withEngineAndAdmin(server(), 'idle_sweeps', async (engine, admin) => {
    await engine.createSweep({ name: 'idle', spec: {}, priority: 1, backend: 'procedural', model: 'm1' }, [JOB('idle', 0)], 'sw-idle');
    await engine.createSweep({ name: 'open', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [JOB('open', 0)], 'sw-open');
    await engine.createSweep({ name: 'empty', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [], 'sw-empty');
    const job = (await engine.leaseNext('n1', CAPS, 30_000))!;
    assert.equal(job.sweep_id, 'sw-idle');
    assert.equal((await engine.completeJob(job.id, 'n1', report(job))).accepted, true);
    assert.equal((await engine.getSweep('sw-idle'))!.status, 'done');
    assert.equal(await engine.settleIdleSweeps(), 0, 'nothing left open');
    // As the farm would be had the replica died before settling: the sweep still running, no sweep.done event written.
    await admin.query(`UPDATE sweeps SET status = 'running', finished_at = NULL WHERE id = 'sw-idle'`);
    await admin.query(`DELETE FROM outbox WHERE msg_id = 'sweep.done.sw-idle'`);
    assert.equal(await engine.settleIdleSweeps(), 1);
    assert.equal((await engine.getSweep('sw-idle'))!.status, 'done');
    assert.equal((await admin.query(`SELECT 1 FROM outbox WHERE msg_id = 'sweep.done.sw-idle'`)).rows.length, 1, 'its sweep.done event written');
    assert.equal(await engine.settleIdleSweeps(), 0, 'settled once');
    assert.equal((await engine.getSweep('sw-open'))!.status, 'queued');
    assert.equal((await engine.getSweep('sw-empty'))!.status, 'queued');
  });
});

test('the counters move into shards on a database with work in it: counts, running counts and settling carry on', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('shards_upgrade');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    // The schema as it was before the shards, with a sweep under way: 2 jobs queued, 1 leased to n1, 1 done.
    await admin.query('CREATE TABLE nightshift_schema (version INTEGER NOT NULL)');
    const before = MIGRATIONS.findIndex((m) => m.includes('sweep_count_shards'));
    for (const m of MIGRATIONS.slice(0, before)) await admin.query(m);
    await admin.query('INSERT INTO nightshift_schema (version) VALUES ($1)', [before]);
    await admin.query(`INSERT INTO sweeps (id, name, spec_json, status, backend, model, total, created_at, owner) VALUES ('sw-up', 'up', '{}', 'running', 'procedural', 'm1', 4, 1, 'local')`);
    for (let i = 0; i < 4; i++) {
      await admin.query(
        `INSERT INTO jobs (id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state, min_vram_mb) VALUES ($1, 'sw-up', $2, $3, 'p', $4, '{}', '{}', 'procedural', 'm1', 'queued', 0)`,
        [`sw-up-${i}`, i, `rk-up-${i}`, i],
      );
    }
    await admin.query(`UPDATE jobs SET state = 'leased', node_id = 'n1', lease_expires_at = 9e15, started_at = 1 WHERE id = 'sw-up-0'`);
    await admin.query(`UPDATE jobs SET state = 'done', node_id = 'n2', finished_at = 1 WHERE id = 'sw-up-1'`);
    assert.deepEqual((await admin.query(`SELECT state, n FROM sweep_counts WHERE sweep_id = 'sw-up' AND n > 0 ORDER BY state`)).rows, [{ state: 'done', n: 1 }, { state: 'leased', n: 1 }, { state: 'queued', n: 2 }]);
    assert.equal((await admin.query(`SELECT running FROM users WHERE name = 'local'`)).rows[0].running, 1);
    const engine = await PostgresEngine.open({ url });
    try {
      assert.deepEqual(await engine.counts('sw-up'), { queued: 2, running: 1, done: 1, failed: 0, skipped: 0, cancelled: 0 });
      assert.equal((await engine.getUser('local'))!.running, 1, 'the running count moved over');
      const leased = (await engine.getJob('sw-up-0'))!;
      assert.equal((await engine.completeJob(leased.id, 'n1', report(leased))).accepted, true);
      for (let i = 0; i < 2; i++) {
        const job = (await engine.leaseNext('n3', CAPS, 30_000))!;
        assert.equal((await engine.getUser('local'))!.running, 1);
        assert.equal((await engine.completeJob(job.id, 'n3', report(job))).accepted, true);
      }
      assert.equal((await engine.getUser('local'))!.running, 0);
      assert.equal((await engine.getSweep('sw-up'))!.status, 'done');
      assert.deepEqual(await engine.counts('sw-up'), { queued: 0, running: 0, done: 4, failed: 0, skipped: 0, cancelled: 0 });
    } finally {
      await engine.close();
    }
  } finally {
    await admin.end();
  }
});

test('a report that cannot be stored fails alone: the other reports, reads, heartbeats and cost records of its turn (one batch) are recorded', { skip, timeout: 60_000 }, async () => {
  await withEngineAndAdmin(server(), 'batch_split', async (engine) => {
    await engine.createSweep({ name: 'split', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [JOB('split', 0), JOB('split', 1), JOB('split', 2)], 'sw-split');
    const [a, b, c] = [(await engine.leaseNext('n1', CAPS, 30_000))!, (await engine.leaseNext('n2', CAPS, 30_000))!, (await engine.leaseNext('n3', CAPS, 30_000))!];
    // A hostile node's model name with a NUL byte: PostgreSQL's text refuses it (22021), which fails the batch's one statement.
    const [ok1, bad, ok2] = await Promise.allSettled([
      engine.completeJob(a.id, 'n1', report(a)),
      engine.completeJob(b.id, 'n2', { ...report(b), model: 'evil\u0000' }),
      engine.completeJob(c.id, 'n3', report(c)),
    ]);
    assert.deepEqual([ok1.status, bad.status, ok2.status], ['fulfilled', 'rejected', 'fulfilled']);
    assert.match(String((bad as PromiseRejectedResult).reason), /0x00/);
    assert.deepEqual([(await engine.getJob(a.id))!.state, (await engine.getJob(b.id))!.state, (await engine.getJob(c.id))!.state], ['done', 'leased', 'done']);
    assert.deepEqual(await engine.counts('sw-split'), { queued: 0, running: 1, done: 2, failed: 0, skipped: 0, cancelled: 0 });

    // The same for the other batches: a job id with a NUL byte fails its own read, heartbeat or cost record only.
    const evil = 'sw-split-\u0000';
    const reads = await Promise.allSettled([engine.getJob(b.id), engine.getJob(evil), engine.getJob(a.id)]);
    assert.deepEqual(reads.map((r) => (r.status === 'fulfilled' ? r.value?.id : 'rejected')), [b.id, 'rejected', a.id]);
    const beats = await Promise.allSettled([engine.heartbeat('n2', [b.id], 30_000), engine.heartbeat('n9', [evil], 30_000)]);
    assert.deepEqual(beats.map((r) => (r.status === 'fulfilled' ? r.value : 'rejected')), [[], 'rejected']);
    const cost = { renderMs: 1_000, skipped: false };
    const costs = await Promise.allSettled([engine.costs.record(a.id, 'n1', cost), engine.costs.record(evil, 'n9', cost), engine.costs.record(c.id, 'n3', cost)]);
    assert.deepEqual(costs.map((r) => (r.status === 'fulfilled' ? r.value.recorded : 'rejected')), [true, 'rejected', true]);
  });
});

test('batched completions racing heartbeats, lease renewals, requeues and a node marked down on another replica take their locks in one order: no deadlock, nothing retried, 20 rounds', { skip, timeout: 120_000 }, async () => {
  const url = await server().createDatabase('batch_lock_order');
  const clock = { t: 1_700_000_000_000 };
  const a = await PostgresEngine.open({ url, now: () => clock.t });
  const b = await PostgresEngine.open({ url, now: () => clock.t });
  const nodes = Array.from({ length: 8 }, (_, i) => `n${i}`);
  try {
    for (const n of nodes) await a.nodes.upsertNode(n, n, CAPS);
    let completed = 0;
    for (let round = 0; round < 20; round++) {
      // Stored last index first, so the table's physical order is the reverse of the ids': a statement that locks rows
      // as it scans them (not in id order) meets them in the opposite order from a batch of completions.
      const jobs32 = Array.from({ length: 32 }, (_, i) => JOB(`r${round}`, 31 - i));
      await a.createSweep({ name: 'r', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, jobs32, `sw-r${round}`);
      const held = new Map<string, string[]>(nodes.map((n) => [n, []]));
      const jobs: NonNullable<Awaited<ReturnType<PostgresEngine['leaseNext']>>>[] = [];
      for (let i = 0; i < 32; i++) {
        const n = nodes[i % nodes.length]!;
        const job = (await a.leaseNext(n, CAPS, 30_000))!;
        held.get(n)!.push(job.id);
        jobs.push(job);
      }
      // n7 runs copies of n0's jobs too; it is marked down while the others' reports come in.
      for (const id of held.get('n0')!) assert.ok(await a.leaseCopy(id, 'n7', 30_000));
      clock.t += 10_000;
      const reported = jobs.filter((j) => j.node_id !== 'n7');
      const [outcomes] = await Promise.all([
        Promise.all(reported.map((j) => b.completeJob(j.id, j.node_id!, report(j)))),
        Promise.all(nodes.slice(0, 6).map((n) => a.heartbeat(n, held.get(n)!, 30_000))),
        a.renewLeases('n6', held.get('n6')!, 30_000),
        a.markNodeDownIfOurs('n7', 'gone'),
        a.requeue(held.get('n5')!.slice(2), 'asked'),
      ]);
      completed += outcomes.filter((o) => o.accepted).length;
    }
    // Every report is its node's, leased or held last (n5's requeued jobs, n0's handed to n7's copies and back): all accepted.
    assert.equal(completed, 20 * 28);
    assert.deepEqual((await a.nodes.listNodes()).map((n) => [n.id, n.jobs_done]), nodes.map((n) => [n, n === 'n7' ? 0 : 20 * 4]));
    assert.deepEqual(a.retries(), {}, 'no transaction of replica a was retried');
    assert.deepEqual(b.retries(), {}, 'no transaction of replica b was retried');
  } finally {
    await a.close();
    await b.close();
  }
});

test('a requeue or a heartbeat passes over a job another transaction is leasing: queued in its snapshot, it is neither waited for nor taken from its new holder', { skip, timeout: 60_000 }, async () => {
  await withEngineAndAdmin(server(), 'requeue_snapshot', async (engine, admin) => {
    await engine.createSweep({ name: 'snap', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, [JOB('snap', 0)], 'sw-snap');
    const id = 'sw-snap-000000';
    await admin.query('BEGIN');
    await admin.query(`UPDATE jobs SET state = 'leased', node_id = 'n2', lease_expires_at = 1 WHERE id = $1`, [id]);
    // Either would wait for the admin's commit if it locked the row (then this fails by its deadline; correct code never waits).
    const waited = (p: Promise<unknown>) => Promise.race([p.then(() => 'went on'), delay(10_000, undefined, { ref: false }).then(() => 'waited for the lease')]);
    assert.equal(await waited(engine.requeue([id], 'asked')), 'went on');
    assert.equal(await waited(engine.heartbeat('n1', [id], 30_000)), 'went on');
    await admin.query('COMMIT');
    const job = (await engine.getJob(id))!;
    assert.deepEqual([job.state, job.node_id], ['leased', 'n2'], 'not taken back from the node it went to');
  });
});

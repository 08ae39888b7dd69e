import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { postgresForFile } from '@nightshift/devfarm';
import { LEASE, PROC, assertCountsExact, newJobs } from './conformance-helpers.js';
import { PICK_MANY_SQL, pickModelValues } from './postgres-pick.js';
import { jobId } from '../store/rows.js';
import { PostgresEngine } from './postgres.js';
import { withEngineAndAdmin } from './postgres-test-helpers.js';

const { skip, server } = postgresForFile();

/** A parameter's value as SQL text (EXPLAIN EXECUTE takes no bound parameters); arrays as array literals. */
const literal = (v: unknown): string =>
  typeof v === 'number' ? String(v) : escapeLiteral(Array.isArray(v) ? `{${v.map((e) => JSON.stringify(String(e))).join(',')}}` : String(v));
const escapeLiteral = (text: string) => `'${text.replaceAll("'", "''")}'`;

const sweep = (name: string, priority = 0) => ({ name, spec: {}, priority, backend: 'procedural', model: 'm1' });

test('a turn of picks by like nodes is one statement; two replicas\' batches at once lease every job once', { skip, timeout: 60_000 }, async () => {
  const url = await server().createDatabase('pick_batches');
  const [a, b] = [await PostgresEngine.open({ url }), await PostgresEngine.open({ url })];
  try {
    await a.createSweep(sweep('p'), newJobs('pb', 30), 'sw-pb');
    const before = a.picks.statements;
    const five = await Promise.all(['n1', 'n2', 'n3', 'n4', 'n5'].map((n) => a.leaseNext(n, PROC, LEASE)));
    assert.deepEqual(five.map((j) => j && [j.idx, j.node_id]), [[0, 'n1'], [1, 'n2'], [2, 'n3'], [3, 'n4'], [4, 'n5']]);
    assert.equal(a.picks.statements - before, 1, 'five picks, one statement');

    const nodes = (tag: string) => Array.from({ length: 20 }, (_, i) => `${tag}${i}`);
    const got = await Promise.all([...nodes('a').map((n) => a.leaseNext(n, PROC, LEASE)), ...nodes('b').map((n) => b.leaseNext(n, PROC, LEASE))]);
    const leased = got.filter((j) => j !== undefined);
    assert.equal(leased.length, 25, 'the 25 jobs left, and no more');
    assert.equal(new Set(leased.map((j) => j.id)).size, 25, 'none twice');
    await assertCountsExact(a, 'sw-pb', 30, { running: 30 });
  } finally {
    await a.close();
    await b.close();
  }
});

test('a batch walks only the sweeps it needs: its plan is a Limit over the nested loop of sweeps in order, so later sweeps\' jobs are not locked', { skip, timeout: 60_000 }, async () => {
  await withEngineAndAdmin(server(), 'pick_many_plan', async (engine, client) => {
    for (let s = 0; s < 3; s++) await engine.createSweep(sweep(`s${s}`, s), newJobs(`pm${s}`, 50), `sw-pm${s}`);
    const now = Date.now();
    const values = [['x1', 'x2'], PROC.backends, PROC.vramMb, PROC.models, now, now + LEASE, ...pickModelValues(PROC.models, undefined)];
    // The plan a named statement starts with (values known) and the generic one it may keep.
    await client.query(`PREPARE many AS ${PICK_MANY_SQL}`);
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      await client.query(`SET plan_cache_mode = ${mode}`);
      const plan = (await client.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) EXECUTE many (${values.map(literal).join(', ')})`)).rows[0]!['QUERY PLAN'];
      const limits: { Plans?: { 'Node Type': string; 'Parent Relationship': string }[] }[] = [];
      const walk = (n: { 'Node Type'?: string; Plans?: unknown[] }) => {
        if (n['Node Type'] === 'Limit') limits.push(n as (typeof limits)[number]);
        for (const c of n.Plans ?? []) walk(c as typeof n);
      };
      walk((plan as { Plan: { Plans?: unknown[] } }[])[0]!.Plan);
      // The picked jobs' Limit (the lateral's own Limit is under its LockRows) right on the nested loop.
      assert.ok(limits.some((l) => l.Plans?.find((c) => c['Parent Relationship'] === 'Outer')?.['Node Type'] === 'Nested Loop'), `${mode}: ${JSON.stringify(plan)}`);
    }
    await client.query('RESET plan_cache_mode');

    // And so, with the first sweep's jobs enough for the batch, it locks those two and nothing of the other sweeps;
    // a third node, excluded from a job, picks alone and has no job locked for it.
    await client.query(`INSERT INTO job_exclusions (job_id, node_id) VALUES ($1, 'ex')`, [jobId('sw-pm0', 7)]);
    await client.query('BEGIN');
    const batch = await client.query<{ sweep_id: string | null; idx: number | null; alone: string | null }>(PICK_MANY_SQL, [['x1', 'ex', 'x2'], ...values.slice(1)]);
    const rows = batch.rows.map((r) => [r.sweep_id, r.idx, r.alone]).sort((a, b) => String(a).localeCompare(String(b)));
    assert.deepEqual(rows, [[null, null, 'ex'], ['sw-pm2', 0, null], ['sw-pm2', 1, null]]);
    const locked = async (sweepId: string, idx: number) => {
      const probe = new pg.Client({ host: client.host, port: client.port, user: client.user, database: client.database });
      await probe.connect();
      try {
        await probe.query('SELECT 1 FROM jobs WHERE sweep_id = $1 AND idx = $2 FOR UPDATE NOWAIT', [sweepId, idx]);
        return false;
      } catch (err) {
        if ((err as { code?: string }).code === '55P03') return true;
        throw err;
      } finally {
        await probe.end();
      }
    };
    assert.deepEqual(
      [await locked('sw-pm2', 1), await locked('sw-pm2', 2), await locked('sw-pm1', 0), await locked('sw-pm0', 0)],
      [true, false, false, false],
    );
    await client.query('ROLLBACK');
  });
});

test('a node whose values the database refuses fails alone: the others of its batch keep their leases, none leased twice; several sweeps start at once', { skip, timeout: 60_000 }, async () => {
  await withEngineAndAdmin(server(), 'pick_batch_refused', async (engine) => {
    for (let s = 0; s < 3; s++) await engine.createSweep(sweep(`r${s}`), newJobs(`pr${s}`, 2), `sw-pr${s}`);
    // Two groups (two kinds of card); in the second a node id with a NUL byte, which cannot be stored as text
    // (SQLSTATE 22021): that group's statement fails after the first group's committed, then each of its nodes picks alone.
    const big = { ...PROC, vramMb: 16_384 };
    const asks: [string, typeof PROC][] = [['r1', PROC], ['r2', PROC], ['r3', big], ['bad\u0000node', big], ['r4', big], ['r5', PROC], ['r6', big]];
    const got = await Promise.allSettled(asks.map(([n, caps]) => engine.leaseNext(n, caps, LEASE)));
    assert.deepEqual(got.map((g) => g.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    const jobs = got.flatMap((g) => (g.status === 'fulfilled' && g.value ? [g.value] : []));
    assert.deepEqual(jobs.map((j) => j.node_id), ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'], 'each of the others got a job');
    assert.equal(new Set(jobs.map((j) => j.id)).size, 6);
    // Six leased, no more: a node whose answer was lost would hold a second job it was never told of.
    for (let s = 0; s < 3; s++) {
      await assertCountsExact(engine, `sw-pr${s}`, 2, { running: 2 });
      assert.equal((await engine.getSweep(`sw-pr${s}`))!.status, 'running');
    }
    // And in one statement, several queued sweeps started together.
    for (let s = 3; s < 6; s++) await engine.createSweep(sweep(`r${s}`), newJobs(`pr${s}`, 1), `sw-pr${s}`);
    const before = engine.picks.statements;
    const three = await Promise.all(['s1', 's2', 's3'].map((n) => engine.leaseNext(n, PROC, LEASE)));
    assert.equal(engine.picks.statements - before, 1);
    assert.deepEqual(three.map((j) => j?.sweep_id), ['sw-pr3', 'sw-pr4', 'sw-pr5']);
    for (let s = 3; s < 6; s++) assert.equal((await engine.getSweep(`sw-pr${s}`))!.status, 'running');
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { postgresForFile } from '@nightshift/devfarm';
import { LEASE, PROC, assertCountsExact, newJobs } from './conformance-helpers.js';
import { PICK_MANY_SQL, pickModelValues } from './postgres-pick.js';
import { PostgresEngine } from './postgres.js';

const { skip, server } = postgresForFile();

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
  const url = await server().createDatabase('pick_many_plan');
  const engine = await PostgresEngine.open({ url });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (let s = 0; s < 3; s++) await engine.createSweep(sweep(`s${s}`, s), newJobs(`pm${s}`, 50), `sw-pm${s}`);
    const now = Date.now();
    const values = [['x1', 'x2'], PROC.backends, PROC.vramMb, PROC.models, now, now + LEASE, ...pickModelValues(PROC.models, undefined), 2];
    const plan = (await client.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${PICK_MANY_SQL}`, values)).rows[0]!['QUERY PLAN'];
    const limits: { Plans?: { 'Node Type': string }[] }[] = [];
    const walk = (n: { 'Node Type'?: string; Plans?: unknown[] }) => {
      if (n['Node Type'] === 'Limit') limits.push(n as (typeof limits)[number]);
      for (const c of n.Plans ?? []) walk(c as typeof n);
    };
    walk((plan as { Plan: { Plans?: unknown[] } }[])[0]!.Plan);
    // The picked jobs' Limit (the lateral's own Limit is under its LockRows).
    assert.ok(limits.some((l) => l.Plans?.[0]?.['Node Type'] === 'Nested Loop'), JSON.stringify(plan));

    // And so, with the first sweep's jobs enough for the batch, it locks those two and nothing of the other sweeps.
    await client.query('BEGIN');
    const batch = await client.query<{ sweep_id: string | null; idx: number | null }>(PICK_MANY_SQL, values);
    assert.deepEqual(batch.rows.map((r) => [r.sweep_id, r.idx]), [['sw-pm2', 0], ['sw-pm2', 1]]);
    const locked = async (sweepId: string, idx: number) => {
      const probe = new pg.Client({ connectionString: url });
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
  } finally {
    await client.end();
    await engine.close();
  }
});

/**
 * The PostgreSQL engine's batched held counts and heartbeats on a churned
 * jobs table whose statistics are stale (issue 12): a 100,000-job sweep,
 * analyzed when all were queued, then ROUNDS rounds of 2,000 jobs leased to
 * 1,000 nodes, renewed once and finished, with no vacuum or analyze since
 * (as a long 1,000-node night between autovacuum's passes). It times a
 * turn's worth of 50 nodes' held counts and heartbeats (two jobs each)
 * through the engine. With a plain state = 'leased' test in the copies'
 * count (now a FILTER) and in the heartbeats' lock (now LEASED,
 * postgres-helpers.ts), the planner walked every leased job's entry in
 * jobs_holder (2.8 ms a node for the held counts).
 * The last line is JSON.
 *   node --import tsx bench/churned-pg.ts [ROUNDS=50]
 */
import pg from 'pg';
import { startPostgres } from '@nightshift/devfarm';
import { PostgresEngine } from '../services/coordinator/src/store-engine/postgres.js';
import { jobId } from '../services/coordinator/src/store/rows.js';

const ROUNDS = Number(process.argv[2] ?? 50);
const server = await startPostgres();
const url = await server.createDatabase('churned');
const engine = await PostgresEngine.open({ url });
const N = 100_000;
const jobs = Array.from({ length: N }, (_, i) => ({ index: i, renderKey: `rk-${i}`, prompt: 'p', seed: i, params: {}, axes: {}, backend: 'procedural', model: 'm1', minVramMb: 0 }));
await engine.createSweep({ name: 's', spec: {}, priority: 0, backend: 'procedural', model: 'm1' }, jobs, 'sw-x');
const c = new pg.Client({ connectionString: url });
await c.connect();
for (let r = 0; r < ROUNDS; r++) {
  const range = [r * 2000, (r + 1) * 2000];
  await c.query(`UPDATE jobs SET state = 'leased', node_id = 'n' || (idx % 1000), lease_expires_at = 1 WHERE idx >= $1 AND idx < $2`, range);
  await c.query(`UPDATE jobs SET lease_expires_at = 2 WHERE idx >= $1 AND idx < $2`, range);
  if (r < ROUNDS - 1) await c.query(`UPDATE jobs SET state = 'done', lease_expires_at = NULL WHERE idx >= $1 AND idx < $2`, range);
}
const last = (ROUNDS - 1) * 2000;
const nodes = Array.from({ length: 50 }, (_, i) => i * 7);
const held: number[] = [];
const beats: number[] = [];
for (let i = 0; i < 5; i++) {
  let t = performance.now();
  const counts = await Promise.all(nodes.map((n) => engine.heldCount(`n${n}`)));
  held.push(performance.now() - t);
  if (counts.some((n) => n !== 2)) throw new Error(`held counts ${counts.join(',')}: expected 2 each`);
  t = performance.now();
  const named = await Promise.all(nodes.map((n) => engine.heartbeat(`n${n}`, [jobId('sw-x', last + n), jobId('sw-x', last + n + 1000)], 30_000)));
  beats.push(performance.now() - t);
  if (named.some((x) => x.length > 0)) throw new Error('a heartbeat named its own jobs as not its own');
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const stats = (await c.query(`SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs'`)).rows[0] as { n_live_tup: string; n_dead_tup: string };
console.log(`held counts, 50 nodes in one turn: ${median(held).toFixed(1)} ms; heartbeats, 50 nodes x 2 jobs in one turn: ${median(beats).toFixed(1)} ms (dead tuples ${stats.n_dead_tup})`);
console.log(JSON.stringify({ bench: 'churned-pg', rounds: ROUNDS, heldCounts50Ms: +median(held).toFixed(2), heartbeats50Ms: +median(beats).toFixed(2), deadTuples: Number(stats.n_dead_tup) }));
await c.end();
await engine.close();
await server.close();

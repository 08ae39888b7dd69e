/**
 * Where a 100,000-job submit's time goes on PostgreSQL (issue 12: "a
 * 100,000-job sweep accepted in under 1 s"), without the HTTP layer. On a
 * throwaway cluster (fsync off, as the other benches), SWEEPS sweeps of JOBS
 * jobs are stored one after another through PostgresEngine.createSweep, as
 * sweeps.ts submits them (spec → lazy expansion → streamed into one COPY). For
 * each: the expansion alone in JS (the same spec walked without storing), the
 * whole createSweep, and of it the jobs' transaction (createSweep less the
 * ANALYZE that follows a big sweep, timed again on its own right after with
 * the same statement, and a full `ANALYZE jobs` for comparison). Then, once
 * at the end, the cost of each trigger and index of `jobs` alone: a sweep's
 * insert (server side only: rows made by generate_series) with that trigger
 * disabled or that index dropped, rolled back, best of 3. The last line is
 * JSON.
 *   node --import tsx bench/submit-breakdown-pg.ts [SWEEPS=10] [JOBS=100000]
 */
import { loadavg } from 'node:os';
import { estimateVramMb, expandSweepLazily, parseSpec } from '@nightshift/sweep';
import { tempDir } from '@nightshift/devfarm';
import pg from 'pg';
import { withPostgres } from './with-postgres.js';
import type { NewJob } from '../services/coordinator/src/store-engine/engine.js';
import { PostgresEngine } from '../services/coordinator/src/store-engine/postgres.js';
import { analyzeJobs } from '../services/coordinator/src/store-engine/postgres-job-insert.js';

const SWEEPS = Number(process.argv[2] ?? 10);
const JOBS = Number(process.argv[3] ?? 100_000);
const tmp = tempDir('nightshift-submit-breakdown-');

const specOf = (s: number) => parseSpec({ name: `breakdown ${s}`, prompts: Array.from({ length: JOBS / 100 }, (_, i) => `sweep ${s} prompt ${i}`), seeds: { count: 100 }, params: { width: 64, height: 64, steps: 1 } });
function* jobsOf(s: number): Generator<NewJob> {
  for (const j of expandSweepLazily(specOf(s), JOBS).jobs) yield Object.assign(j, { minVramMb: estimateVramMb(Number(j.params.width), Number(j.params.height)) });
}
const since = (t: number) => +(performance.now() - t).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Server-side cost of storing JOBS rows into `jobs` with `setup` applied first (rolled back), best of 3. */
async function insertCost(client: pg.Client, setup: string[]): Promise<number> {
  const sw = 'sw-breakdownzzz';
  const select = `SELECT '${sw}-' || lpad(i::text, 6, '0'), '${sw}', i, md5(i::text) || md5(i::text || 'x'), 'prompt ' || (i / 100), i % 100,
    '{"width":64,"height":64,"steps":1}', '{}', 'procedural', 'procedural-v1', 'queued', 'render', 0, '' FROM generate_series(0, ${JOBS - 1}) i`;
  let best = Infinity;
  for (let k = 0; k < 3; k++) {
    await client.query('BEGIN');
    for (const s of setup) await client.query(s);
    await client.query(`INSERT INTO sweeps (id, name, spec_json, status, priority, backend, total, created_at) VALUES ($1, $1, '{}', 'queued', 0, 'procedural', 0, 0)`, [sw]);
    const t = performance.now();
    await client.query(`INSERT INTO jobs (id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state, kind, min_vram_mb, model_hash) ${select}`);
    best = Math.min(best, since(t));
    await client.query('ROLLBACK');
    // The rolled-back rows are dead weight in the heap and indexes: gone before the next try.
    await client.query('VACUUM jobs');
  }
  return best;
}

const result = await withPostgres(tmp.dir, async (server) => {
  const url = await server.createDatabase('breakdown');
  const engine = await PostgresEngine.open({ url });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    const rows: { expandMs: number; createSweepMs: number; transactionMs: number; analyzeMs: number; fullAnalyzeMs: number }[] = [];
    for (let s = 0; s < SWEEPS; s++) {
      let t = performance.now();
      let n = 0;
      for (const _ of jobsOf(1000 + s)) n++;
      const expandMs = since(t);
      t = performance.now();
      await engine.createSweep({ name: `breakdown ${s}`, spec: {}, priority: 0, backend: 'procedural', model: 'procedural-v1' }, jobsOf(s));
      const createSweepMs = since(t);
      t = performance.now();
      await analyzeJobs(pool);
      const analyzeMs = since(t);
      t = performance.now();
      await client.query('ANALYZE jobs');
      const fullAnalyzeMs = since(t);
      const row = { expandMs, createSweepMs, transactionMs: +(createSweepMs - analyzeMs).toFixed(1), analyzeMs, fullAnalyzeMs };
      rows.push(row);
      console.log(`sweep ${s + 1}/${SWEEPS} (${n} jobs): expansion alone ${expandMs} ms; createSweep ${createSweepMs} ms = transaction ~${row.transactionMs} + ANALYZE (analyzeJobs) ${analyzeMs} ms; a full ANALYZE ${fullAnalyzeMs} ms`);
    }
    const variants: Record<string, string[]> = { everything: [] };
    const { rows: triggers } = await client.query<{ tgname: string }>(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'jobs'::regclass AND NOT tgisinternal AND tgtype & 4 = 4`);
    for (const r of triggers) variants[`without trigger ${r.tgname}`] = [`ALTER TABLE jobs DISABLE TRIGGER ${r.tgname}`];
    const { rows: indexes } = await client.query<{ indexname: string }>(`SELECT indexname FROM pg_indexes WHERE tablename = 'jobs' AND indexname NOT IN ('jobs_pkey', 'jobs_sweep_id_idx_key')`);
    for (const r of indexes) variants[`without index ${r.indexname}`] = [`DROP INDEX ${r.indexname}`];
    variants['without any trigger or secondary index'] = ['ALTER TABLE jobs DISABLE TRIGGER ALL', ...indexes.map((r) => `DROP INDEX ${r.indexname}`)];
    const insertMs: Record<string, number> = {};
    for (const [name, setup] of Object.entries(variants)) {
      insertMs[name] = await insertCost(client, setup);
      console.log(`server-side insert of ${JOBS} rows at ${SWEEPS * JOBS} stored, ${name}: ${insertMs[name]} ms`);
    }
    const med = (k: keyof (typeof rows)[number]) => median(rows.map((r) => r[k]));
    return { median: { expandMs: med('expandMs'), createSweepMs: med('createSweepMs'), transactionMs: med('transactionMs'), analyzeMs: med('analyzeMs'), fullAnalyzeMs: med('fullAnalyzeMs') }, perSweep: rows, serverInsertMs: insertMs };
  } finally {
    await client.end();
    await pool.end();
    await engine.close();
  }
});
tmp.cleanup();
console.log(JSON.stringify({ bench: 'submit-breakdown-pg', sweeps: SWEEPS, jobsPerSweep: JOBS, loadavg1m: +loadavg()[0]!.toFixed(2), ...result }));

/**
 * Whether the cheap ANALYZE after a big sweep (postgres-job-insert.ts's
 * analyzeJobs: the pick's columns only, statistics target 30) gives the pick
 * the plan a full `ANALYZE jobs` gives it (issue 12: the submit awaited a
 * full ANALYZE, a fifth of its time at 1M queued). For each way (none,
 * analyzeJobs, analyzeJobs at target 10, full), a fresh database (autovacuum off on jobs, so nothing analyzes behind
 * the bench) takes SWEEPS sweeps of JOBS jobs, each followed by that ANALYZE;
 * then 32 nodes take turns leasing (leaseNext, the pick and its lease in one
 * statement) and completing TURNS jobs. It prints the time the ANALYZEs took
 * and lease p50/p99 per way. The last line is JSON.
 *   node --import tsx bench/analyze-pick-pg.ts [SWEEPS=10] [JOBS=100000] [TURNS=600]
 */
import { loadavg } from 'node:os';
import pg from 'pg';
import { imageKey, thumbKey } from '@nightshift/common';
import { tempDir } from '@nightshift/devfarm';
import { estimateVramMb, expandSweepLazily, parseSpec } from '@nightshift/sweep';
import { withPostgres } from './with-postgres.js';
import type { NewJob } from '../services/coordinator/src/store-engine/engine.js';
import { PostgresEngine } from '../services/coordinator/src/store-engine/postgres.js';
import { analyzeJobs, storeJobs } from '../services/coordinator/src/store-engine/postgres-job-insert.js';

const SWEEPS = Number(process.argv[2] ?? 10);
const JOBS = Number(process.argv[3] ?? 100_000);
const TURNS = Number(process.argv[4] ?? 600);
const NODES = 32;
const CAPS = { backends: ['procedural'], models: [], vramMb: 24_576 };
const tmp = tempDir('nightshift-analyze-pick-');

function* jobsOf(s: number): Generator<NewJob> {
  const spec = parseSpec({ name: `s${s}`, prompts: Array.from({ length: Math.ceil(JOBS / 100) }, (_, i) => `sweep ${s} prompt ${i}`), seeds: { count: Math.min(100, JOBS) }, params: { width: 64, height: 64, steps: 1 } });
  for (const j of expandSweepLazily(spec, JOBS * 2).jobs) yield Object.assign(j, { minVramMb: estimateVramMb(64, 64) });
}

const ways: Record<string, (pool: pg.Pool) => Promise<unknown>> = {
  none: async () => {},
  analyzeJobs: (pool) => analyzeJobs(pool),
  'analyzeJobs@10': (pool) => analyzeJobs(pool, 10),
  full: (pool) => pool.query('ANALYZE jobs'),
};

const result = await withPostgres(tmp.dir, async (server) => {
  const out: Record<string, { analyzeMsPerSweep: number; leaseP50Ms: number; leaseP99Ms: number }> = {};
  for (const [way, analyze] of Object.entries(ways)) {
    const url = await server.createDatabase(`analyze_pick_${way.toLowerCase().replace(/\W/g, '_')}`);
    const engine = await PostgresEngine.open({ url, poolSize: 4 });
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await pool.query('ALTER TABLE jobs SET (autovacuum_enabled = false)');
      let analyzeMs = 0;
      for (let s = 0; s < SWEEPS; s++) {
        const id = `sw-${String(s).padStart(12, '0')}`;
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          await client.query(`INSERT INTO sweeps (id, name, spec_json, status, priority, backend, total, created_at, model) VALUES ($1, $1, '{}', 'queued', 0, 'procedural', $2, $3, 'procedural-v1')`, [id, JOBS, s]);
          await storeJobs(client, id, jobsOf(s), '');
          await client.query('COMMIT');
        } finally {
          client.release();
        }
        const t = performance.now();
        await analyze(pool);
        analyzeMs += performance.now() - t;
      }
      const ms: number[] = [];
      for (let turn = 0; turn < TURNS; turn++) {
        const node = `node-${turn % NODES}`;
        const t = performance.now();
        const job = await engine.leaseNext(node, CAPS, 60_000);
        ms.push(performance.now() - t);
        if (!job) throw new Error(`nothing to lease at turn ${turn}`);
        await engine.completeJob(job.id, node, { imageKey: imageKey(job.render_key), thumbKey: thumbKey(job.render_key), renderMs: 1, skipped: false });
      }
      ms.sort((a, b) => a - b);
      const at = (p: number) => +ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))]!.toFixed(2);
      out[way] = { analyzeMsPerSweep: +(analyzeMs / SWEEPS).toFixed(1), leaseP50Ms: at(50), leaseP99Ms: at(99) };
      console.log(`${way.padEnd(12)} ANALYZE ${out[way].analyzeMsPerSweep} ms a sweep; lease p50 ${out[way].leaseP50Ms} ms, p99 ${out[way].leaseP99Ms} ms`);
    } finally {
      await pool.end();
      await engine.close();
    }
  }
  return out;
});
tmp.cleanup();
console.log(JSON.stringify({ bench: 'analyze-pick-pg', sweeps: SWEEPS, jobsPerSweep: JOBS, turns: TURNS, loadavg1m: +loadavg()[0]!.toFixed(2), result }));

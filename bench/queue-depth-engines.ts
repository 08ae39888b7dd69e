/**
 * Scheduling cost against queue depth on both store engines (issue 12: "both
 * on SQLite and PostgreSQL"), through the async StoreEngine the replicas use:
 * SQLite (the adapter over the coordinator's Store) and PostgreSQL (a
 * throwaway cluster from startPostgres, fsync off: read its numbers as the
 * engine's CPU and round trips, not a disk's). For each depth (1k, 100k, 1M
 * queued jobs over 10 sweeps), 32 nodes take turns: each turn is one
 * leaseNext (the pick and its lease, one statement on PostgreSQL) and the
 * completion of the leased job. At most half the queue is taken, so a depth
 * stays itself while measured. It prints p50/p99 of leaseNext, jobs/s
 * through lease → complete, and the ratio of 1M to 1k per engine (goal:
 * within 2×), plus the time to store each 100k jobs. bench/queue-depth.ts is
 * the same walk on the coordinator's synchronous Store. The last line is JSON.
 *   node --import tsx bench/queue-depth-engines.ts [TURNS=3000] [DEPTHS=1000,100000,1000000]
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { imageKey, thumbKey } from '@nightshift/common';
import { tempDir } from '@nightshift/devfarm';
import { withPostgres } from './with-postgres.js';
import type { NewJob, StoreEngine } from '../services/coordinator/src/store-engine/engine.js';
import { SqliteEngine } from '../services/coordinator/src/store-engine/sqlite.js';
import { PostgresEngine } from '../services/coordinator/src/store-engine/postgres.js';

const TURNS = Number(process.argv[2] ?? 3_000);
const DEPTHS = (process.argv[3] ?? '1000,100000,1000000').split(',').map(Number);
const SWEEPS = 10;
const NODES = 32;
const BATCH = 100_000; // jobs per createSweep call at most: a 1M queue is 10 sweeps of 100k
const CAPS = { backends: ['procedural'], models: [], vramMb: 24_576 };
const LEASE = 60_000;

interface DepthResult {
  depth: number;
  storeSecondsPer100k: number;
  leaseP50Ms: number;
  leaseP99Ms: number;
  jobsPerSec: number;
  turns: number;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** A sweep's jobs as the coordinator stores them (distinct render keys; 64×64 so every node fits). */
function jobsOf(tag: string, n: number): NewJob[] {
  const params = { width: 64, height: 64, steps: 1 };
  return Array.from({ length: n }, (_, i) => ({
    index: i,
    renderKey: `${tag}${i.toString(16)}`.padEnd(64, '0'),
    prompt: `${tag} prompt ${Math.floor(i / 100)}`,
    seed: i % 100,
    params,
    axes: {},
    backend: 'procedural',
    model: 'procedural-v1',
    minVramMb: 0,
  }));
}

async function measure(engine: StoreEngine, depth: number): Promise<DepthResult> {
  const perSweep = Math.ceil(depth / SWEEPS);
  let storeMs = 0;
  for (let s = 0; s < SWEEPS; s++) {
    const jobs = jobsOf(`d${depth.toString(16)}s${s}x`, Math.min(perSweep, BATCH));
    const t = performance.now();
    await engine.createSweep({ name: `depth ${depth} #${s}`, spec: {}, priority: 0, backend: 'procedural', model: 'procedural-v1' }, jobs);
    storeMs += performance.now() - t;
  }
  const latencies: number[] = [];
  const turns = Math.min(TURNS, Math.floor(depth / 2));
  const started = performance.now();
  for (let turn = 0; turn < turns; turn++) {
    const node = `node-${turn % NODES}`;
    const t = performance.now();
    const job = await engine.leaseNext(node, CAPS, LEASE);
    latencies.push(performance.now() - t);
    if (!job) throw new Error(`nothing to lease at turn ${turn} with ${depth} queued`);
    const outcome = await engine.completeJob(job.id, node, { imageKey: imageKey(job.render_key), thumbKey: thumbKey(job.render_key), renderMs: 1, skipped: false });
    if (!outcome.accepted) throw new Error(`job ${job.id}'s completion was not accepted: ${JSON.stringify(outcome)}`);
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    depth,
    storeSecondsPer100k: +(storeMs / 1000 / (depth / 100_000)).toFixed(2),
    leaseP50Ms: +percentile(latencies, 50).toFixed(3),
    leaseP99Ms: +percentile(latencies, 99).toFixed(3),
    jobsPerSec: Math.round(turns / seconds),
    turns,
  };
}

/** Every depth on a fresh database of one engine; `open(name)` makes one. */
async function walk(label: string, open: (name: string) => Promise<StoreEngine>): Promise<{ results: DepthResult[]; ratio: number }> {
  // Warm-up (JIT, caches): the first depth measured would otherwise be the slowest whatever it is.
  const warm = await open('warm');
  await measure(warm, DEPTHS[0]!);
  await warm.close();
  const results: DepthResult[] = [];
  for (const depth of DEPTHS) {
    const engine = await open(`depth${depth}`);
    try {
      const r = await measure(engine, depth);
      results.push(r);
      console.log(`${label.padEnd(10)} ${String(depth).padEnd(9)} ${r.storeSecondsPer100k.toFixed(2).padStart(10)} ${r.leaseP50Ms.toFixed(3).padStart(9)} ${r.leaseP99Ms.toFixed(3).padStart(9)} ${String(r.jobsPerSec).padStart(7)}`);
    } finally {
      await engine.close();
    }
  }
  return { results, ratio: +(results.at(-1)!.jobsPerSec / results[0]!.jobsPerSec).toFixed(2) };
}

const loadBefore = loadavg()[0]!;
const tmp = tempDir('nightshift-queue-depth-engines-');
console.log(`up to ${TURNS} turns (half the queue at most) of leaseNext → completeJob by ${NODES} nodes, ${SWEEPS} sweeps per queue`);
console.log('engine     queued    store s/100k  lease p50  lease p99  jobs/s');
const sqlite = await walk('sqlite', async (name) => SqliteEngine.open(join(tmp.dir, `${name}.sqlite`)));
const postgres = await withPostgres(tmp.dir, (server) => walk('postgres', async (name) => PostgresEngine.open({ url: await server.createDatabase(name.toLowerCase()), poolSize: 4 })));
tmp.cleanup();
const load = { before: +loadBefore.toFixed(2), after: +loadavg()[0]!.toFixed(2) };
console.log(`jobs/s at the deepest queue ÷ at the shallowest (goal ≥ 0.5): sqlite ${sqlite.ratio}${'ratio' in postgres ? `, postgres ${postgres.ratio}` : ''}; load ${load.before} → ${load.after}`);
console.log(JSON.stringify({ bench: 'queue-depth-engines', turns: TURNS, nodes: NODES, sweeps: SWEEPS, load, sqlite, postgres }));
process.exit(0);

/**
 * The two Store engines side by side on this machine: the time to store a
 * 100,000-job sweep (one transaction; PostgreSQL in 5,000-row batches), and
 * picks per second (scheduler rule + lease, one statement on PostgreSQL) with
 * that sweep and four small ones queued: one caller in turn, then 16 in
 * flight over two connections (on PostgreSQL two pools, as two replicas
 * would; SQLite serialises them in its one process). The sweeps belong to two
 * users of different weights and the nodes report model caches, so the pick
 * pays for every term of its rule (fair share, rule 4's model placement).
 * Then what a farm of 1,000 nodes costs besides picks: heartbeats (touchNode,
 * fresh and rewriting last_seen), rule 4's farm-wide holder counts, and the
 * sweeps page. PostgreSQL is Debian's,
 * a throwaway cluster with fsync off (startPostgres), so its numbers are an
 * upper bound for a durable server; SQLite runs as the coordinator does
 * (WAL, synchronous=NORMAL). The last line is the results as JSON.
 *   node --import tsx bench/store-engines.ts [JOBS=100000] [PICKS=4000]
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tempDir } from '@nightshift/devfarm';
import { withPostgres } from './with-postgres.js';
import type { NewJob, PickModels, StoreEngine } from '../services/coordinator/src/store-engine/engine.js';
import { SqliteEngine } from '../services/coordinator/src/store-engine/sqlite.js';
import { PostgresEngine } from '../services/coordinator/src/store-engine/postgres.js';

const JOBS = Number(process.argv[2] ?? 100_000);
const PICKS = Number(process.argv[3] ?? 4_000);
const CAPS = { backends: ['procedural'], models: ['m1'], vramMb: 24_576 };
const LEASE = 60_000;
const HASH = 'a'.repeat(64);
// Half the nodes have the small sweeps' registry model loaded; three nodes elsewhere hold it.
const MODELS: PickModels[] = [
  { state: { loaded: HASH, cached: [], downloads: [], bytesPerS: 0 }, holderCounts: new Map([[HASH, 3]]) },
  { state: { loaded: '', cached: [], downloads: [], bytesPerS: 0 }, holderCounts: new Map([[HASH, 3]]) },
];

function jobs(tag: string, n: number): NewJob[] {
  const params = { steps: 20, width: 512, height: 512 };
  return Array.from({ length: n }, (_, i) => ({
    index: i,
    renderKey: `${tag}${i.toString(16).padStart(58, '0')}`,
    prompt: `a lighthouse at dusk, style ${i % 7}, ${tag}`,
    seed: i,
    params,
    axes: { style: i % 7 },
    backend: 'procedural',
    model: i % 2 ? 'm1' : 'm2',
    minVramMb: 0,
  }));
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

interface EngineResult {
  insertSeconds: number;
  picksPerSec: number;
  pickP50Ms: number;
  pickP99Ms: number;
  concurrentPicksPerSec: number;
  distinct: boolean;
  /** Heartbeats at 1,000 nodes: touchNode when last_seen is fresh (writes nothing) and when it must be rewritten. */
  touchFreshPerSec: number;
  touchWritePerSec: number;
  /** Rule 4's holder counts over 1,000 online nodes holding 10 of 50 models each. */
  holderCountsMs: number;
  /** The sweeps page (50 newest with their counters), as GET /api/sweeps reads it. */
  sweepsPageMs: number;
}

const NODES = 1_000;

/** Calls per second of `call(i)` for `n` calls in turn. */
async function rate(n: number, call: (i: number) => Promise<unknown>): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < n; i++) await call(i);
  return Math.round(n / ((performance.now() - t) / 1000));
}

async function median(n: number, call: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call();
    times.push(performance.now() - t);
  }
  return +quantile(times.sort((a, b) => a - b), 0.5).toFixed(2);
}

async function measureNodes(engine: StoreEngine): Promise<Pick<EngineResult, 'touchFreshPerSec' | 'touchWritePerSec' | 'holderCountsMs' | 'sweepsPageMs'>> {
  const hashes = Array.from({ length: 50 }, (_, i) => i.toString(16).padStart(64, '0'));
  for (let i = 0; i < NODES; i++) {
    await engine.nodes.upsertNode(`hb-${i}`, `gpu-${i}`, CAPS);
    await engine.modelHolders.setHeld(`hb-${i}`, Array.from({ length: 10 }, (_, k) => hashes[(i + k * 5) % 50]!));
  }
  return {
    touchFreshPerSec: await rate(5_000, (i) => engine.nodes.touchNode(`hb-${i % NODES}`)),
    touchWritePerSec: await rate(5_000, (i) => engine.nodes.touchNode(`hb-${i % NODES}`, 0)),
    holderCountsMs: await median(50, () => engine.modelHolders.holderCounts()),
    sweepsPageMs: await median(50, async () => {
      for (const s of await engine.listings.listSweeps({ offset: 0, limit: 50 })) await engine.counts(s.id);
    }),
  };
}

async function measure(engine: StoreEngine, second: StoreEngine): Promise<EngineResult> {
  await engine.addKey({ name: 'alice', admin: false, weight: 1, quotaImages: null }, 'bench-a');
  await engine.addKey({ name: 'bob', admin: false, weight: 2, quotaImages: null }, 'bench-b');
  const big = jobs('b', JOBS);
  let t = performance.now();
  await engine.createSweep({ name: 'big', spec: {}, priority: 0, backend: 'procedural', model: 'm1', owner: 'alice' }, big, 'sw-big');
  const insertSeconds = (performance.now() - t) / 1000;
  for (let s = 0; s < 4; s++) {
    const sweep = { name: `small${s}`, spec: {}, priority: 0, backend: 'procedural', model: 'm2', owner: 'bob', modelHash: HASH, modelBytes: 2 ** 30 };
    await engine.createSweep(sweep, jobs(`s${s}`, 1_000), `sw-small${s}`);
  }

  const leased = new Set<string>();
  const latencies: number[] = [];
  t = performance.now();
  for (let i = 0; i < PICKS; i++) {
    const t0 = performance.now();
    const job = await engine.leaseNext(`node-${i % 100}`, CAPS, LEASE, MODELS[i % 2]);
    latencies.push(performance.now() - t0);
    if (job) leased.add(job.id);
  }
  const picksPerSec = PICKS / ((performance.now() - t) / 1000);
  latencies.sort((a, b) => a - b);

  const inFlight = 16;
  t = performance.now();
  let got = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async (_, w) => {
      const e = w % 2 ? second : engine;
      for (let i = w; i < PICKS; i += inFlight) {
        const job = await e.leaseNext(`node-${i % 100}`, CAPS, LEASE, MODELS[i % 2]);
        if (job) {
          got++;
          leased.add(job.id);
        }
      }
    }),
  );
  const concurrentPicksPerSec = PICKS / ((performance.now() - t) / 1000);
  return {
    insertSeconds: +insertSeconds.toFixed(2),
    picksPerSec: Math.round(picksPerSec),
    pickP50Ms: +quantile(latencies, 0.5).toFixed(2),
    pickP99Ms: +quantile(latencies, 0.99).toFixed(2),
    concurrentPicksPerSec: Math.round(concurrentPicksPerSec),
    // Every pick leased a job no other pick got.
    distinct: got === PICKS && leased.size === 2 * PICKS,
    ...(await measureNodes(engine)),
  };
}

const loadBefore = loadavg()[0]!;
const tmp = tempDir('nightshift-bench-');
const sqliteEngine = SqliteEngine.open(join(tmp.dir, 'coordinator.sqlite'));
const sqlite = await measure(sqliteEngine, new SqliteEngine(sqliteEngine.store));
await sqliteEngine.close();
console.error('sqlite', sqlite);

const postgres = await withPostgres(tmp.dir, async (server) => {
  const url = await server.createDatabase('bench');
  const a = await PostgresEngine.open({ url, poolSize: 8 });
  const b = await PostgresEngine.open({ url, poolSize: 8 });
  const result = await measure(a, b);
  await a.close();
  await b.close();
  return result;
});
console.error('postgres', postgres);
tmp.cleanup();
// The box is shared: the 1-minute load before and after says how much to trust the numbers.
const load = { before: +loadBefore.toFixed(2), after: +loadavg()[0]!.toFixed(2) };
console.log(JSON.stringify({ bench: 'store-engines', jobs: JOBS, picks: PICKS, load, sqlite, postgres }));

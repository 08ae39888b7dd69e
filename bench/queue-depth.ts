/**
 * Scheduling cost against queue depth (issue 12): the coordinator's own store
 * and scheduler, in process, on a SQLite file opened as the service opens it
 * (WAL, synchronous=NORMAL). For each depth (1k, 100k, 1M queued jobs spread
 * over 10 sweeps), 32 simulated nodes take turns: each turn is one pick, the
 * lease of the picked job and its completion (the three statements a real
 * dispatch costs the database; at most half the queue is taken, so a
 * depth stays itself while measured; gRPC and storage are bench/dispatch.ts's
 * part). It prints p50/p99 of the pick alone, jobs/s through
 * pick → lease → complete, and the ratio of 1M to 1k (goal: within 2×).
 * Building each queue (parse, expand, store 100k jobs a sweep) is timed too:
 * that is the in-process part of a 100k-job submit. The coordinator's RSS,
 * the HTTP accept time and GET /api/sweeps at 1M are bench/million.ts's,
 * measured on a real coordinator process. The last line is JSON.
 *   node --import tsx bench/queue-depth.ts [TURNS=5000] [DEPTHS=1000,100000,1000000]
 */
import { join } from 'node:path';
import { imageKey, thumbKey } from '@nightshift/common';
import { tempDir } from '@nightshift/devfarm';
import { estimateVramMb, expandSweep, parseSpec, sweepModel } from '@nightshift/sweep';
import { openDb, Scheduler, Store, type NodeCaps } from '@nightshift/coordinator';

const TURNS = Number(process.argv[2] ?? 5_000);
const DEPTHS = (process.argv[3] ?? '1000,100000,1000000').split(',').map(Number);
const SWEEPS = 10;
const NODES = 32;
const tmp = tempDir('nightshift-queue-depth-');

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

interface DepthResult {
  depth: number;
  buildSecondsPer100k: number;
  pickP50Ms: number;
  pickP99Ms: number;
  jobsPerSec: number;
  turns: number;
}

function measure(depth: number): DepthResult {
  const store = new Store(openDb(join(tmp.dir, `depth-${depth}.db`)));
  const scheduler = new Scheduler(store.db);
  const perSweep = Math.ceil(depth / SWEEPS);
  let buildMs = 0;
  for (let s = 0; s < SWEEPS; s++) {
    const t = performance.now();
    // 100 seeds per prompt, as people write sweeps; distinct prompts keep render keys distinct.
    const spec = parseSpec({ prompts: Array.from({ length: Math.ceil(perSweep / 100) }, (_, i) => `sweep ${s} prompt ${i}`), seeds: { count: Math.min(100, perSweep) }, params: { width: 64, height: 64, steps: 1 } });
    const jobs = expandSweep(spec, { maxJobs: 1_000_000 }).slice(0, perSweep);
    store.createSweep(
      { name: `depth ${depth} #${s}`, spec, priority: 0, backend: spec.backend, model: sweepModel(spec) },
      jobs.map((j) => Object.assign(j, { minVramMb: estimateVramMb(Number(j.params.width), Number(j.params.height)) })),
    );
    buildMs += performance.now() - t;
  }
  const caps: NodeCaps = { backends: ['procedural'], models: [], vramMb: 24_576 };
  const nodes = Array.from({ length: NODES }, (_, i) => `node-${i}`);
  for (const n of nodes) store.upsertNode(n, n, { vramMb: caps.vramMb, backends: caps.backends });
  const picks: number[] = [];
  // At most half the queue, so the depth measured stays the depth named.
  const turns = Math.min(TURNS, Math.floor(depth / 2));
  const started = performance.now();
  for (let turn = 0; turn < turns; turn++) {
    const node = nodes[turn % NODES]!;
    const t = performance.now();
    const id = scheduler.pick(node, caps, Date.now());
    picks.push(performance.now() - t);
    if (!id) throw new Error(`nothing to pick at turn ${turn} with ${depth} queued`);
    const [job] = store.lease([id], node, 60_000);
    if (!job) throw new Error(`job ${id} could not be leased`);
    const outcome = store.completeJob(id, node, { imageKey: imageKey(job.render_key), thumbKey: thumbKey(job.render_key), renderMs: 1, skipped: false });
    if (!outcome.accepted) throw new Error(`job ${id}'s completion was not accepted: ${JSON.stringify(outcome)}`);
  }
  const seconds = (performance.now() - started) / 1000;
  store.db.close();
  picks.sort((a, b) => a - b);
  return { depth, buildSecondsPer100k: buildMs / 1000 / (depth / 100_000), pickP50Ms: percentile(picks, 50), pickP99Ms: percentile(picks, 99), jobsPerSec: turns / seconds, turns };
}

// Warm-up (JIT, page cache): without it the first depth measured is the slowest whatever it is.
measure(DEPTHS[0]!);
const results: DepthResult[] = [];
console.log(`up to ${TURNS} turns (half the queue at most) of pick → lease → complete by ${NODES} nodes, ${SWEEPS} sweeps per queue`);
console.log('queued      build s/100k   pick p50 ms   pick p99 ms   jobs/s');
for (const depth of DEPTHS) {
  const r = measure(depth);
  results.push(r);
  console.log(`${String(depth).padEnd(10)}  ${r.buildSecondsPer100k.toFixed(2).padStart(12)}   ${r.pickP50Ms.toFixed(3).padStart(11)}   ${r.pickP99Ms.toFixed(3).padStart(11)}   ${r.jobsPerSec.toFixed(0).padStart(6)}`);
}
tmp.cleanup();
const first = results[0]!;
const last = results.at(-1)!;
const ratio = { depths: [first.depth, last.depth], jobsPerSec: last.jobsPerSec / first.jobsPerSec, pickP99: last.pickP99Ms / first.pickP99Ms };
console.log(`jobs/s at ${last.depth} ÷ at ${first.depth}: ${ratio.jobsPerSec.toFixed(2)} (goal ≥ 0.5); pick p99 ratio ${ratio.pickP99.toFixed(2)}`);
console.log(JSON.stringify({ bench: 'queue-depth', turns: TURNS, nodes: NODES, sweeps: SWEEPS, results, ratio }));

/**
 * Vector search at scale: builds the indexer's VectorIndex (usearch HNSW,
 * f32, inner product) over N synthetic 512-d embeddings, then measures query
 * latency p50/p99 (k = 10, one thread, as the API runs it) and recall@10
 * against exact search, for several search expansions; plus build time,
 * memory, snapshot save/load time, and native exact search for reference.
 *
 * Data: unit vectors with low intrinsic dimension, like real CLIP
 * embeddings: x = normalise(W·z + ε), z from a mixture of 1,000 overlapping
 * clusters in a 64-d latent space (--latent, --spread), W a fixed random
 * 512×64 map, ε isotropic noise (--noise).
 * (Uniformly random vectors are the worst case for any ANN index and are not
 * what an image collection looks like; --data uniform measures them anyway.)
 *
 *   node --import tsx bench/search-latency.ts [--n 100000] [--queries 200] [--m 16] [--ef-add 128] [--quant f32] [--data clustered|uniform] [--snapshot FILE]
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import type * as Usearch from 'usearch';
import { VectorIndex } from '@nightshift/indexer';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    dim: { type: 'string', default: '512' },
    queries: { type: 'string', default: '200' },
    m: { type: 'string', default: '16' },
    'ef-add': { type: 'string', default: '128' },
    quant: { type: 'string', default: 'f32' },
    data: { type: 'string', default: 'clustered' },
    snapshot: { type: 'string' },
    latent: { type: 'string', default: '64' },
    spread: { type: 'string', default: '1' },
    noise: { type: 'string', default: '0.3' },
  },
});
const N = Number(args.n);
const D = Number(args.dim);
const Q = Number(args.queries);
const M = Number(args.m);
const EF_ADD = Number(args['ef-add']);
const QUANT = args.quant as 'f32' | 'f16';
const usearch = createRequire(import.meta.url)('usearch') as typeof Usearch;

const rss = () => process.memoryUsage().rss / 1e6;
const log = (s: string) => console.log(`[${(performance.now() / 1000).toFixed(0).padStart(4)} s] ${s}`);

// ------------------------------------------------------------------ data

let seed = 42;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
let spare: number | undefined;
function gauss(): number {
  if (spare !== undefined) {
    const s = spare;
    spare = undefined;
    return s;
  }
  const u = rand() || 1e-12;
  const v = rand();
  const r = Math.sqrt(-2 * Math.log(u));
  spare = r * Math.sin(2 * Math.PI * v);
  return r * Math.cos(2 * Math.PI * v);
}

const LATENT = Number(args.latent);
const SPREAD = Number(args.spread);
const NOISE = Number(args.noise);
const CLUSTERS = 1000;
const W = Float32Array.from({ length: D * LATENT }, () => gauss() / Math.sqrt(LATENT));
const centres = Float32Array.from({ length: CLUSTERS * LATENT }, gauss);

/** Fills `out` (n×D) with vectors from the data model. */
function generate(out: Float32Array, n: number): void {
  const z = new Float32Array(LATENT);
  for (let i = 0; i < n; i++) {
    const o = i * D;
    if (args.data === 'uniform') {
      for (let j = 0; j < D; j++) out[o + j] = gauss();
    } else {
      const c = Math.floor(rand() * CLUSTERS) * LATENT;
      for (let l = 0; l < LATENT; l++) z[l] = centres[c + l]! + SPREAD * gauss();
      for (let j = 0; j < D; j++) {
        let s = 0;
        const w = j * LATENT;
        for (let l = 0; l < LATENT; l++) s += W[w + l]! * z[l]!;
        out[o + j] = s + NOISE * gauss();
      }
    }
    let norm = 0;
    for (let j = 0; j < D; j++) norm += out[o + j]! ** 2;
    norm = Math.sqrt(norm);
    for (let j = 0; j < D; j++) out[o + j]! /= norm;
  }
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

// ------------------------------------------------------------------ run

console.log(`machine: ${cpus().length} cpus (${cpus()[0]?.model}), node ${process.version}, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log(`index: N=${N} dim=${D} ${QUANT} M=${M} ef_add=${EF_ADD}, data ${args.data}${args.data === 'uniform' ? '' : ` (latent ${LATENT}, spread ${SPREAD}, noise ${NOISE})`}, ${Q} queries`);
const rss0 = rss();
const data = new Float32Array(N * D);
let t = performance.now();
generate(data, N);
const queries = new Float32Array(Q * D);
generate(queries, Q);
log(`generated ${N} vectors in ${((performance.now() - t) / 1000).toFixed(1)} s (${((N * D * 4) / 1e6).toFixed(0)} MB as f32)`);

t = performance.now();
const truth = usearch.exactSearch(data, queries, D, 10, usearch.MetricKind.IP, 0) as Usearch.BatchMatches;
const exactMs = (performance.now() - t) / Q;
const truthSets = Array.from({ length: Q }, (_, i) => new Set(Array.from(truth.get(i).keys, (k) => Number(k) + 1)));
log(`exact ground truth (native, all threads): ${exactMs.toFixed(1)} ms per query`);
const exactOne: number[] = [];
for (let i = 0; i < Math.min(Q, 30); i++) {
  const s = performance.now();
  usearch.exactSearch(data, queries.subarray(i * D, (i + 1) * D), D, 10, usearch.MetricKind.IP, 1);
  exactOne.push(performance.now() - s);
}
log(`exact search, one thread: p50 ${percentile(exactOne, 50).toFixed(1)} ms`);

const opts = { dim: D, exactBelow: 0, connectivity: M, expansionAdd: EF_ADD, quantization: QUANT } as const;
const index = new VectorIndex(opts);
const snapshot = args.snapshot ?? join(tmpdir(), `nightshift-bench-${process.pid}.usearch`);
let buildS = 0;
if (args.snapshot && existsSync(args.snapshot)) {
  t = performance.now();
  index.loadSnapshot(args.snapshot);
  log(`loaded the index from ${args.snapshot} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
} else {
  const rssBefore = rss();
  t = performance.now();
  const CHUNK = 10_000;
  for (let i = 0; i < N; i += CHUNK) {
    const n = Math.min(CHUNK, N - i);
    const ids = Array.from({ length: n }, (_, j) => i + j + 1);
    const vecs = Array.from({ length: n }, (_, j) => data.subarray((i + j) * D, (i + j + 1) * D));
    index.upsert(ids, vecs);
    if ((i / CHUNK) % 10 === 9) log(`  added ${i + n} (${((i + n) / ((performance.now() - t) / 1000)).toFixed(0)} vectors/s)`);
  }
  buildS = (performance.now() - t) / 1000;
  log(`built HNSW over ${N} vectors in ${buildS.toFixed(1)} s (${(N / buildS).toFixed(0)} vectors/s); RSS +${(rss() - rssBefore).toFixed(0)} MB for the index`);
  t = performance.now();
  index.save(snapshot, { model: 'bench', epoch: 0, seq: 0 });
  log(`snapshot saved in ${((performance.now() - t) / 1000).toFixed(1)} s (${(statSync(snapshot).size / 1e6).toFixed(0)} MB)`);
}

function measure(search: (q: Float32Array) => number[]): { p50: number; p99: number; recall: number } {
  const lat: number[] = [];
  let found = 0;
  for (let r = 0; r < 2; r++) {
    for (let i = 0; i < Q; i++) {
      const q = queries.subarray(i * D, (i + 1) * D);
      const s = performance.now();
      const ids = search(q);
      const ms = performance.now() - s;
      if (r === 1) {
        lat.push(ms);
        found += ids.filter((id) => truthSets[i]!.has(id)).length;
      }
    }
  }
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), recall: found / (Q * 10) };
}

console.log(`\n  ef_search   p50 ms   p99 ms   recall@10`);
const rows: { efSearch: number; p50Ms: number; p99Ms: number; recallAt10: number; path: string }[] = [];
const fmt = (ef: string, m: { p50: number; p99: number; recall: number }, note = '') => {
  rows.push({ efSearch: Number(ef), p50Ms: m.p50, p99Ms: m.p99, recallAt10: m.recall, path: note.trim() });
  console.log(`  ${ef.padStart(9)}   ${m.p50.toFixed(3).padStart(6)}   ${m.p99.toFixed(3).padStart(6)}   ${m.recall.toFixed(3).padStart(9)}${note}`);
};
// The indexer's own class at its default expansion (128), as GET /api/search runs it.
fmt('128', measure((q) => index.search(q, 10).map((h) => h.id)), '   VectorIndex (the API path)');
// expansion_search is fixed per usearch Index: other settings view (memory-map) the snapshot.
for (const ef of [32, 64, 256, 512]) {
  const u = new usearch.Index({ dimensions: D, metric: usearch.MetricKind.IP, quantization: QUANT === 'f16' ? usearch.ScalarKind.F16 : usearch.ScalarKind.F32, connectivity: M, expansion_add: EF_ADD, expansion_search: ef, multi: false });
  u.view(snapshot);
  fmt(String(ef), measure((q) => Array.from((u.search(q, 10, 1) as Usearch.Matches).keys, Number)), '   usearch view of the snapshot');
}
console.log(`\n  summary: N=${N} build ${buildS ? `${buildS.toFixed(0)} s` : '(loaded)'}, process RSS ${rss().toFixed(0)} MB (started at ${rss0.toFixed(0)} MB; the raw f32 data alone is ${((N * D * 4) / 1e6).toFixed(0)} MB), exact ${exactMs.toFixed(1)} ms/query batched, ${percentile(exactOne, 50).toFixed(1)} ms single-threaded`);
if (!args.snapshot) rmSync(snapshot, { force: true });
rmSync(`${snapshot}.json`, { force: true });
// Machine-readable summary, last line (bench/ convention).
console.log(JSON.stringify({ bench: 'search-latency', n: N, dim: D, quantization: QUANT, buildS: buildS ?? null, rssMB: rss(), exactBatchedMs: exactMs, exactSingleMs: percentile(exactOne, 50), searches: rows }));

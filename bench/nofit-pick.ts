/**
 * "Nothing fits this node" against queue depth (issue 12): is a memo per
 * (sweep, capability class) worth having? The coordinator's own store and
 * scheduler, in process, on a SQLite file opened as the service opens it.
 * For each depth, 10 sweeps whose jobs are, in index order, 90 % 2048×2048
 * (102 GB of VRAM by estimateVramMb) then 10 % 512×512 (10 GB). Two nodes ask
 * for work again and again, nothing leased so every pick sees the same queue:
 *   - "nofit", an 8 GB card: fits no job of any sweep (the memo's case);
 *   - "tail", a 12 GB card: fits only the small jobs at the end of each sweep
 *     (the first fitting job lies behind 90 % of the sweep in index order).
 * It prints p50/p99 of each node's pick per depth and the ratio of the
 * deepest to the shallowest. The last line is JSON.
 *   node --import tsx bench/nofit-pick.ts [PICKS=2000] [DEPTHS=1000,100000,1000000]
 */
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { tempDir } from '@nightshift/devfarm';
import { estimateVramMb, parseSpec } from '@nightshift/sweep';
import { openDb, Scheduler, Store, type NodeCaps } from '@nightshift/coordinator';

const PICKS = Number(process.argv[2] ?? 2_000);
const DEPTHS = (process.argv[3] ?? '1000,100000,1000000').split(',').map(Number);
const SWEEPS = 10;
const BIG = { width: 2048, height: 2048, steps: 1 };
const SMALL = { width: 512, height: 512, steps: 1 };
const tmp = tempDir('nightshift-nofit-pick-');

const NODES: Record<'nofit' | 'tail', NodeCaps> = {
  nofit: { backends: ['procedural'], models: [], vramMb: 8_192 },
  tail: { backends: ['procedural'], models: [], vramMb: 12_288 },
};

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

interface PickStats {
  p50Ms: number;
  p99Ms: number;
  found: boolean;
}

function build(depth: number): Store {
  const store = new Store(openDb(join(tmp.dir, `nofit-${depth}.db`)));
  const perSweep = Math.ceil(depth / SWEEPS);
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 1 }, params: BIG });
  for (let s = 0; s < SWEEPS; s++) {
    const jobs = Array.from({ length: perSweep }, (_, index) => {
      const params = index < perSweep * 0.9 ? BIG : SMALL;
      return {
        index,
        renderKey: createHash('sha256').update(`${depth}/${s}/${index}`).digest('hex'),
        prompt: `sweep ${s} job ${index}`,
        seed: index,
        params,
        axes: {},
        backend: 'procedural',
        model: 'procedural-v1',
        minVramMb: estimateVramMb(params.width, params.height),
      };
    });
    store.createSweep({ name: `nofit ${depth} #${s}`, spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, jobs);
  }
  for (const [id, caps] of Object.entries(NODES)) store.upsertNode(id, id, { vramMb: caps.vramMb, backends: caps.backends });
  return store;
}

function picks(scheduler: Scheduler, nodeId: string, caps: NodeCaps): PickStats {
  const ms: number[] = [];
  let found = false;
  for (let i = 0; i < PICKS; i++) {
    const t = performance.now();
    const id = scheduler.pick(nodeId, caps, Date.now());
    ms.push(performance.now() - t);
    found ||= id !== undefined;
  }
  ms.sort((a, b) => a - b);
  return { p50Ms: +percentile(ms, 50).toFixed(4), p99Ms: +percentile(ms, 99).toFixed(4), found };
}

function measure(depth: number): { depth: number; nofit: PickStats; tail: PickStats } {
  const store = build(depth);
  const scheduler = new Scheduler(store.db);
  const nofit = picks(scheduler, 'nofit', NODES.nofit);
  // Fewer: each of these walks 90 % of a sweep at worst, which is what is measured.
  const tail = picks(scheduler, 'tail', NODES.tail);
  store.db.close();
  if (nofit.found) throw new Error('an 8 GB node was given a job that needs 10 GB or more');
  if (!tail.found) throw new Error('a 12 GB node found none of the 512×512 jobs');
  return { depth, nofit, tail };
}

measure(DEPTHS[0]!); // warm-up (JIT, page cache)
const results = [];
console.log(`${PICKS} picks per node and depth, ${SWEEPS} sweeps, 90 % 2048² then 10 % 512² jobs in each`);
console.log('queued      nofit p50 ms  nofit p99 ms   tail p50 ms   tail p99 ms');
for (const depth of DEPTHS) {
  const r = measure(depth);
  results.push(r);
  const f = (x: number) => x.toFixed(4).padStart(12);
  console.log(`${String(depth).padEnd(10)}  ${f(r.nofit.p50Ms)}  ${f(r.nofit.p99Ms)}  ${f(r.tail.p50Ms)}  ${f(r.tail.p99Ms)}`);
}
tmp.cleanup();
const first = results[0]!;
const last = results.at(-1)!;
const ratio = { depths: [first.depth, last.depth], nofitP99: +(last.nofit.p99Ms / first.nofit.p99Ms).toFixed(2), tailP99: +(last.tail.p99Ms / first.tail.p99Ms).toFixed(2) };
console.log(`p99 at ${last.depth} ÷ at ${first.depth}: nofit ${ratio.nofitP99}, tail ${ratio.tailP99}`);
console.log(JSON.stringify({ bench: 'nofit-pick', picks: PICKS, sweeps: SWEEPS, results, ratio }));

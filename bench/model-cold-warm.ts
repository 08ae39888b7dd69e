/**
 * Time to first image of a sweep on a registry model, on a cold farm (the
 * nodes' model caches empty: the model is pulled from the bucket, verified
 * and loaded first) against a warm one (the same nodes, the model cached and
 * loaded, a second sweep with other seeds). Real processes (devfarm): s3rver,
 * a coordinator, NODES onnx gpu-nodes; the model is the built-in tiny SD
 * plus PAD_MB of padding (an extra file the onnx backend ignores), so the
 * download is a real share of a cold start. Each run starts the nodes afresh
 * with emptied caches. Medians; the last line is JSON.
 *   node --import tsx bench/model-cold-warm.ts [PAD_MB=64] [RUNS=3] [NODES=2]
 */
import { randomBytes } from 'node:crypto';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addModel } from '@nightshift/registry';
import { ensureTinySd } from '@nightshift/models';
import { modelCacheDir, startFarm, tempDir, waitFor, waitForNodes } from '@nightshift/devfarm';

const PAD_MB = Number(process.argv[2] ?? 64);
const RUNS = Number(process.argv[3] ?? 3);
const NODES = Number(process.argv[4] ?? 2);

const tmp = tempDir('nightshift-bench-cold-warm-');
const model = join(tmp.dir, 'bench-sd');
cpSync(await ensureTinySd(join(tmp.dir, 'built')), model, { recursive: true });
if (PAD_MB > 0) writeFileSync(join(model, 'padding.bin'), randomBytes(PAD_MB * 1024 * 1024));
const config = join(tmp.dir, 'onnx-node.yaml');
writeFileSync(config, 'procedural: false\nonnx:\n  threads: 1\n');

const farm = await startFarm({ dir: join(tmp.dir, 'farm'), nodes: NODES, modelCache: {}, nodeEnv: () => ({ NIGHTSHIFT_NODE_CONFIG: config }) });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function firstImageMs(seed: number): Promise<number> {
  const spec = { prompts: ['a castle on a hill'], seeds: { start: seed, count: NODES * 2 }, backend: 'onnx', model: 'bench-sd', params: { width: 64, height: 64, steps: 2 } };
  const t0 = performance.now();
  const res = await fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
  const { id } = (await res.json()) as { id: string };
  // A bench may poll: first image = the first done job, seen within 10 ms.
  const first = await waitFor('the first image', async () => {
    const s = (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as { counts: { done: number; failed: number } };
    if (s.counts.failed) throw new Error(`sweep ${id} has failed jobs`);
    return s.counts.done > 0 ? performance.now() - t0 : undefined;
  }, 300_000, 10);
  await waitFor('the sweep', async () => ((await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as { status: string }).status === 'done', 300_000, 100);
  return first;
}

try {
  await waitForNodes(farm.apiUrl, NODES);
  const { manifest } = await addModel(farm.storage, 'bench-sd', 'diffusion', model);
  const cold: number[] = [];
  const warm: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    if (run > 0) {
      // Cold again: nodes restarted with empty caches (nothing cached, nothing loaded).
      await Promise.all(farm.nodes.map((n) => n.stop()));
      for (let i = 0; i < NODES; i++) rmSync(modelCacheDir(farm.dir, i), { recursive: true, force: true });
      for (let i = 0; i < NODES; i++) farm.startNode(i);
      await waitFor('nodes back', async () => {
        const { nodes } = (await (await fetch(`${farm.apiUrl}/api/nodes`)).json()) as { nodes: { status: string; models: { cached: string[] } | null }[] };
        return nodes.filter((n) => n.status === 'online' && n.models && n.models.cached.length === 0).length === NODES;
      }, 120_000, 100);
    }
    cold.push(await firstImageMs(1_000 * run + 1));
    warm.push(await firstImageMs(1_000 * run + 500));
    console.log(`run ${run + 1}: cold ${cold.at(-1)!.toFixed(0)} ms, warm ${warm.at(-1)!.toFixed(0)} ms to the first image`);
  }
  const c = median(cold);
  const w = median(warm);
  console.log(JSON.stringify({
    bench: 'model-cold-warm',
    nodes: NODES,
    modelBytes: manifest.totalSize,
    runs: RUNS,
    coldFirstImageMs: Math.round(c),
    warmFirstImageMs: Math.round(w),
    coldOverWarm: Number((c / w).toFixed(2)),
  }));
} finally {
  await farm.stop();
  tmp.cleanup();
}

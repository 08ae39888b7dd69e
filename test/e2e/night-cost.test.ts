/**
 * What a night cost, over real processes: node-0 has a stub `nvidia-smi`
 * on its PATH reporting a steady 250 W, node-1 has no GPU it can read. Both
 * run the example exec generator (plain Node, no Python), which stands for
 * a GPU renderer: it does not say where it ran, so the node's GPU is named.
 * The sweep's figures count GPU hours from both, kWh only from node-0 (a
 * partial night says how many renders were measured; node-1's energy is
 * "not measured", never estimated), cost at NIGHTSHIFT_ENERGY_PRICE, and
 * /metrics carries the same. Every PNG carries its provenance chunk, naming
 * the GPU that rendered it where nvidia-smi could tell; a procedural
 * render, which runs on the CPU, names none even on node-0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { main } from '@nightshift/cli';
import { readProvenance } from '@nightshift/common';
import { createClient, SweepService } from '@nightshift/proto';
import { postSweep, startFarm, tempDir, waitFor, waitForNodes } from '@nightshift/devfarm';
import { stubNvidiaSmi } from '../../services/gpu-node/src/nvidia-smi-stub.js';

const WATTS = 250;
const PRICE = 0.4;
const GPU = { name: 'NVIDIA Stub 4090', driver: '550.54.14' };
const GENERATOR = fileURLToPath(new URL('../../examples/generators/node-generator.mjs', import.meta.url));
const ARGS = ['--prompt={prompt}', '--seed={seed}', '--width={width}', '--height={height}', '--steps={steps}', '--output={output}', '--preview={preview}', '--params={params}'];

interface Figures {
  renders: number;
  gpuHours: number;
  measuredRenders: number;
  kWh: number | null;
  cost: number | null;
}
interface Cost extends Figures {
  energy: string;
  pricePerKwh: number | null;
  nodes: (Figures & { nodeId: string; gpuName: string; driverVersion: string })[];
}

test('a night measured on one node of two: GPU hours, kWh, cost, per node and in total; provenance in every PNG', { timeout: 240_000 }, async () => {
  const tmp = tempDir('nightshift-night-cost-');
  const smi = stubNvidiaSmi({ gpus: [GPU], watts: [WATTS] });
  const nodeConfig = path.join(tmp.dir, 'node-config.yaml');
  writeFileSync(nodeConfig, toYaml({ procedural: true, generators: [{ name: 'example', command: [process.execPath, GENERATOR, ...ARGS], timeoutMs: 30_000 }] }));
  const farm = await startFarm({
    dir: tmp.dir,
    nodes: 2,
    env: { NIGHTSHIFT_ENERGY_PRICE: String(PRICE) },
    // node-1: CUDA_VISIBLE_DEVICES="" hides any GPU, so even a machine with a real nvidia-smi measures nothing there.
    nodeEnv: (i): Record<string, string> => ({ NIGHTSHIFT_NODE_CONFIG: nodeConfig, ...(i === 0 ? { PATH: smi.env.PATH! } : { CUDA_VISIBLE_DEVICES: '' }) }),
  });
  try {
    await waitForNodes(farm.apiUrl, 2);
    const res = await postSweep(farm.apiUrl, { backend: 'exec', prompts: ['a red circle', 'a blue square', 'a green star'], seeds: { count: 4 }, params: { width: 64, height: 64, steps: 2 } });
    assert.equal(res.status, 201);
    const { id } = (await res.json()) as { id: string };
    const sweep = await waitFor(`sweep ${id} done`, async () => {
      const s = (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as { status: string; counts: { done: number }; cost: Cost };
      return s.status === 'done' ? s : undefined;
    }, 120_000, 200);
    const { cost } = sweep;
    assert.equal(cost.renders, 12, 'every render reported its cost');
    assert.equal(cost.pricePerKwh, PRICE);
    const byNode = new Map(cost.nodes.map((n) => [n.nodeId, n]));
    const measured = byNode.get('node-0');
    const unmeasured = byNode.get('node-1');
    // Both nodes were up before the submit, so each was offered work at once.
    assert.ok(measured && measured.renders > 0 && unmeasured && unmeasured.renders > 0, `both nodes rendered: ${JSON.stringify(cost.nodes)}`);
    assert.deepEqual([measured.gpuName, measured.driverVersion, measured.measuredRenders], [GPU.name, GPU.driver, measured.renders]);
    // Constant power: energy is watts × render time, up to the 1 ms each render time is rounded to.
    const slack = (measured.renders * WATTS * 0.001) / 3_600_000;
    assert.ok(Math.abs(measured.kWh! - (WATTS * measured.gpuHours) / 1000) <= slack + 1e-5 * measured.kWh!, `${measured.kWh} kWh vs ${WATTS} W × ${measured.gpuHours} h`);
    assert.ok(Math.abs(measured.cost! - measured.kWh! * PRICE) <= 1e-5 * measured.cost!);
    assert.deepEqual([unmeasured.kWh, unmeasured.cost, unmeasured.measuredRenders, unmeasured.driverVersion], [null, null, 0, ''], 'no power readings: not measured, never estimated');
    assert.ok(unmeasured.gpuHours > 0, 'its GPU time still counts');
    assert.equal(cost.energy, 'partial');
    assert.equal(cost.measuredRenders, measured.renders, 'the total says how many renders were measured');
    assert.equal(cost.kWh, measured.kWh);
    assert.ok(Math.abs(cost.gpuHours - measured.gpuHours - unmeasured.gpuHours) <= 2e-5 * cost.gpuHours);

    // gRPC GetSweep carries the same figures; "not measured" would be unset kwh, never 0.
    const grpcClient = createClient(SweepService, farm.env.NIGHTSHIFT_COORDINATOR!);
    try {
      const got = await grpcClient.getSweep({ id });
      assert.ok(got.cost, 'GetSweep answers the cost');
      assert.deepEqual(
        [got.cost.renders, got.cost.gpuHours, got.cost.measuredRenders, got.cost.kwh, got.cost.cost, got.cost.pricePerKwh, got.cost.energy],
        [cost.renders, cost.gpuHours, cost.measuredRenders, cost.kWh, cost.cost, PRICE, 'partial'],
      );
    } finally {
      grpcClient.close();
    }
    // `nightshift status ID` prints them.
    let out = '';
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) });
    assert.equal(await main(['node', 'nightshift', '--url', farm.apiUrl, 'status', id], { out: sink, err: sink, env: {} }), 0, out);
    const line = /^ {2}cost {6}(.*)$/m.exec(out)?.[1] ?? '';
    assert.match(line, /^\S+ GPU-h, \S+ kWh \(measured on \d+ of 12 renders\), cost \S+ at 0\.4\/kWh$/, out);
    assert.equal(line.split(', ')[1], `${Number(cost.kWh!.toPrecision(3))} kWh (measured on ${cost.measuredRenders} of 12 renders)`);

    const metrics = await (await fetch(`${farm.apiUrl}/metrics`)).text();
    const joules = Number(/^nightshift_energy_joules_total\{node="node-0"[^}]*\} (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(Math.abs(joules / 3_600_000 - measured.kWh!) <= 1e-5 * measured.kWh!, `/metrics: ${joules} J`);
    assert.match(metrics, /^nightshift_energy_cost_total\{node="node-0"/m);
    assert.match(metrics, /^nightshift_gpu_seconds_total\{node="node-1"/m);
    assert.doesNotMatch(metrics, /^nightshift_energy_joules_total\{node="node-1"[^}]*\} [1-9]/m, 'nothing measured on node-1');

    // Provenance: the GPU that rendered each image, where nvidia-smi could tell.
    const jobsOf = async (sweepId: string) => ((await (await fetch(`${farm.apiUrl}/api/sweeps/${sweepId}/jobs`)).json()) as { jobs: { node: string; renderKey: string }[] }).jobs;
    const jobs = await jobsOf(id);
    for (const node of ['node-0', 'node-1']) {
      const job = jobs.find((j) => j.node === node)!;
      const p = readProvenance(await farm.storage.get(`images/${job.renderKey}.png`));
      assert.ok(p, `${node}'s PNG has a nightshift chunk`);
      assert.equal(p.backend, 'exec');
      assert.deepEqual([p.gpu, p.driver], node === 'node-0' ? [GPU.name, GPU.driver] : [null, null]);
      assert.equal(p.versions.node, process.versions.node);
    }

    // The procedural painter runs on the CPU: no GPU in its provenance, even where node-0 has one.
    const proc = await postSweep(farm.apiUrl, { prompts: ['a red circle'], seeds: { count: 6 }, params: { width: 64, height: 64, steps: 2 } });
    assert.equal(proc.status, 201);
    const procId = ((await proc.json()) as { id: string }).id;
    await waitFor(`sweep ${procId} done`, async () => ((await (await fetch(`${farm.apiUrl}/api/sweeps/${procId}`)).json()) as { status: string }).status === 'done', 120_000, 200);
    const procJobs = await jobsOf(procId);
    assert.ok(procJobs.some((j) => j.node === 'node-0'), `node-0 rendered some: ${JSON.stringify(procJobs.map((j) => j.node))}`);
    for (const job of procJobs) {
      const p = readProvenance(await farm.storage.get(`images/${job.renderKey}.png`));
      assert.deepEqual([p?.backend, p?.gpu, p?.driver], ['procedural', null, null], `${job.node}'s procedural PNG names no GPU`);
    }
  } finally {
    await farm.stop();
    smi.cleanup();
    tmp.cleanup();
  }
});

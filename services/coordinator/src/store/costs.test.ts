/**
 * What a night cost: per-job costs recorded once per job and node, sums per
 * sweep and node kept in the same transaction, the sweep's figures (GPU
 * hours, kWh, cost; "not measured" and partial nights), through the real
 * node hub and its result reports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobCompletedSchema } from '@nightshift/proto';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from '../db.js';
import { Store } from '../store.js';
import { ownKeys } from './completion.js';
import { costOfReport, costStoreOf, MAX_WATTS } from './costs.js';
import { sweepCostView } from '../sweep-cost.js';
import { setup, until } from '../node-hub-test-helpers.js';

const cost = (gpuMs: number, energyJoules?: number, gpuName = 'NVIDIA H200') => ({ gpuMs, energyMeasured: energyJoules !== undefined, energyJoules: energyJoules ?? 0, gpuName, driverVersion: '550.54.15' });
const report = (c: ReturnType<typeof cost> | undefined, skipped = false) => create(JobCompletedSchema, { renderMs: c?.gpuMs ?? 1_000, skipped, ...(c ? { cost: c } : {}) });

function twoSweeps() {
  const store = new Store(openDb(':memory:'));
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 4 } });
  const jobs = (id: string) => {
    store.createSweep({ name: id, spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), id);
    return store.jobs(id);
  };
  return { store, costs: costStoreOf(store.db), a: jobs('sa'), b: jobs('sb') };
}

test('a report counts once per job and node; a second node rendering the same job counts too; sums per sweep and node', () => {
  const { costs, a, b } = twoSweeps();
  assert.deepEqual(costs.record(a[0]!.id, 'n1', report(cost(2_000, 500))), { recorded: true });
  assert.deepEqual(costs.record(a[0]!.id, 'n1', report(cost(2_000, 500))), { recorded: false }, 'sent again after a reconnect');
  costs.record(a[0]!.id, 'n2', report(cost(3_000, 600, 'NVIDIA A10')));
  costs.record(a[1]!.id, 'n1', report(cost(1_000)));
  costs.record(a[2]!.id, 'n1', report(cost(0), true));
  costs.record(b[0]!.id, 'n1', report(cost(7_000, 999)));
  assert.deepEqual(
    costs.sweepSums('sa').map((r) => [r.node_id, r.renders, r.gpu_ms, r.measured_renders, r.energy_joules, r.gpu_name]),
    [
      ['n1', 2, 3_000, 1, 500, 'NVIDIA H200'],
      ['n2', 1, 3_000, 1, 600, 'NVIDIA A10'],
    ],
  );
  assert.deepEqual(costs.nodeSums(), [
    { node_id: 'n1', renders: 3, gpu_ms: 10_000, measured_renders: 2, energy_joules: 1_499 },
    { node_id: 'n2', renders: 1, gpu_ms: 3_000, measured_renders: 1, energy_joules: 600 },
  ]);
  assert.deepEqual(costs.jobCosts(a[1]!.id), [{ node_id: 'n1', gpu_ms: 1_000, energy_joules: null, gpu_name: 'NVIDIA H200', driver_version: '550.54.15' }]);
});

test('reports nodes make up: implausible energy is not measured, GPU time and labels are bounded, old nodes give renderMs', () => {
  assert.equal(costOfReport(report(cost(1_000, (MAX_WATTS + 1) * 1)))!.energyJoules, null);
  assert.match(costOfReport(report(cost(1_000, Number.POSITIVE_INFINITY)))!.implausible ?? '', /not a plausible draw/);
  assert.equal(costOfReport(report(cost(1_000, -1)))!.energyJoules, null);
  assert.equal(costOfReport(report(cost(1_000, MAX_WATTS)))!.energyJoules, MAX_WATTS);
  assert.equal(costOfReport(report(cost(4_000_000_000)))!.gpuMs, 24 * 3_600_000);
  assert.equal(costOfReport(report({ ...cost(1), gpuName: 'x'.repeat(10_000) }))!.gpuName.length, 128);
  assert.deepEqual(costOfReport(report({ ...cost(1), gpuName: 'RTX\u0000 4090\n', driverVersion: '\u001b[31m550' }))!.gpuName, 'RTX 4090', 'no control characters (PostgreSQL refuses NUL)');
  assert.equal(costOfReport(report({ ...cost(1), driverVersion: '\u001b[31m550\u007f' }))!.driverVersion, '[31m550');
  assert.deepEqual(costOfReport(create(JobCompletedSchema, { renderMs: 1_234 })), { gpuMs: 1_234, energyJoules: null, gpuName: '', driverVersion: '' });
  assert.equal(costOfReport(report(cost(5), true)), undefined, 'a skipped job rendered nothing');
});

test('the sweep figures: GPU hours, kWh, cost at the price; "not measured" and partial nights', () => {
  const { costs, a, b } = twoSweeps();
  // Sweep a: 2 renders, both measured: 1.8 MJ + 1.8 MJ = 1 kWh over 2 GPU hours.
  costs.record(a[0]!.id, 'n1', report(cost(3_600_000, 1_800_000)));
  costs.record(a[1]!.id, 'n2', report(cost(3_600_000, 1_800_000)));
  const full = sweepCostView(costs.sweepSums('sa'), 0.3);
  assert.deepEqual({ ...full, nodes: full.nodes.length }, { renders: 2, gpuHours: 2, measuredRenders: 2, kWh: 1, cost: 0.3, energy: 'measured', pricePerKwh: 0.3, nodes: 2 });
  assert.deepEqual(full.nodes[0], { nodeId: 'n1', name: 'n1', gpuName: 'NVIDIA H200', driverVersion: '550.54.15', renders: 1, gpuHours: 1, measuredRenders: 1, kWh: 0.5, cost: 0.15 });
  assert.equal(sweepCostView(costs.sweepSums('sa'), undefined).cost, null, 'no price set: no cost, energy still shown');

  // Sweep b: one render measured, one not: partial, the figure covers the measured one only.
  costs.record(b[0]!.id, 'n1', report(cost(1_800_000, 360_000)));
  costs.record(b[1]!.id, 'n3', report(cost(1_800_000)));
  const partial = sweepCostView(costs.sweepSums('sb'), 1);
  assert.deepEqual([partial.energy, partial.renders, partial.measuredRenders, partial.kWh, partial.cost, partial.gpuHours], ['partial', 2, 1, 0.1, 0.1, 1]);
  assert.deepEqual([partial.nodes[1]!.kWh, partial.nodes[1]!.cost], [null, null], 'the node that measured nothing says so');

  const none = sweepCostView([], 1);
  assert.deepEqual(none, { renders: 0, gpuHours: 0, measuredRenders: 0, kWh: null, cost: null, energy: 'not measured', pricePerKwh: 1, nodes: [] });
});

test('through the node hub: a completion records its cost in the same transaction as the result, once', async () => {
  const { store, connect, storage } = setup();
  const node = connect('n1');
  await until(() => store.leasedTo('n1').length > 0);
  const [job] = store.leasedTo('n1');
  storage.upload(job!);
  const done = { jobId: job!.id, renderKey: job!.render_key, ...ownKeys(job!), renderMs: 2_000, cost: cost(2_000, 400) };
  node.say({ case: 'completed', value: done });
  await until(() => store.getJob(job!.id)!.state === 'done');
  node.say({ case: 'completed', value: done });
  await until(() => store.results(job!.id).length === 2);
  assert.deepEqual(costStoreOf(store.db).sweepSums('sw').map((r) => [r.node_id, r.renders, r.gpu_ms, r.energy_joules]), [['n1', 1, 2_000, 400]]);
});

/**
 * The sweep page's cost line in headless Chromium against the real dashboard
 * with a stand-in GET /api/sweeps/:id (no farm; the figures are the server's
 * own sweepCostView): a partial night says how many renders were measured
 * and what they cost, per node too; a night no node measured says "energy
 * not measured" and shows no cost.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sweepCostView } from '../../services/coordinator/src/sweep-cost.js';
import type { CostSumRow } from '../../services/coordinator/src/store/costs.js';
import { browserMissing } from './chromium.js';
import { serveStandInDashboard, type StandInDashboard } from './stand-in-dashboard.js';

const skip = browserMissing();

const row = (node_id: string, renders: number, gpuHours: number, measured: number, kWh: number, gpu_name: string, driver_version: string): CostSumRow => ({
  node_id,
  name: node_id,
  renders,
  gpu_ms: gpuHours * 3_600_000,
  measured_renders: measured,
  energy_joules: kWh * 3_600_000,
  gpu_name,
  driver_version,
});

const SWEEPS: Record<string, ReturnType<typeof sweepCostView>> = {
  'sw-partial': sweepCostView([row('gamer-pc', 900, 3, 900, 1.2, 'NVIDIA GeForce RTX 4090', '550.54.14'), row('laptop', 300, 0.5, 0, 0, 'cpu', '')], 0.3),
  'sw-none': sweepCostView([row('laptop', 40, 0.25, 0, 0, 'cpu', '')], 0.3),
};

const detail = (id: string) => ({
  id,
  name: id,
  kind: 'render',
  status: 'done',
  priority: 0,
  backend: 'procedural',
  total: 1,
  counts: { queued: 0, running: 0, done: 1, failed: 0, skipped: 0, cancelled: 0 },
  rate: null,
  etaSeconds: 0,
  createdAt: new Date().toISOString(),
  finishedAt: new Date().toISOString(),
  spec: { prompts: ['a lighthouse'] },
  failedJobs: [],
  explain: [],
  blocklisted: [],
  cost: SWEEPS[id],
});

describe('sweep page: what the night cost, in headless Chromium', { skip, timeout: 120_000 }, () => {
  let dash: StandInDashboard;
  let base = '';

  before(async () => {
    dash = await serveStandInDashboard((app) =>
      app
        .get('/api/sweeps/:id', (c) => c.json(detail(c.req.param('id'))))
        .get('/api/sweeps/:id/jobs', (c) => c.json({ jobs: [], offset: 0, limit: 1000, total: 0, nextOffset: null })),
    );
    base = dash.base;
  });

  after(() => dash?.close());

  test('a partial night: GPU-hours, kWh measured on N of M renders, its cost; one line per node', async () => {
    const { page, problems } = await dash.newPage();
    await page.goto(`${base}/ui/sweeps/sw-partial`);
    const total = page.locator('#sweep-cost');
    await total.waitFor();
    assert.equal(await total.innerText(), 'Cost so far: 3.5 GPU-h · 1.2 kWh (measured on 900 of 1,200 renders) · cost 0.36 at 0.3/kWh');
    const lines = await page.locator('#sweep-cost-nodes li').allInnerTexts();
    assert.deepEqual(lines, [
      'gamer-pc (NVIDIA GeForce RTX 4090, driver 550.54.14): 900 renders · 3 GPU-h · 1.2 kWh · cost 0.36 at 0.3/kWh',
      'laptop (cpu): 300 renders · 0.5 GPU-h · energy not measured',
    ]);
    assert.deepEqual(problems, []);
  });

  test('no node measured its power: "energy not measured", and no cost', async () => {
    const { page, problems } = await dash.newPage();
    await page.goto(`${base}/ui/sweeps/sw-none`);
    const total = page.locator('#sweep-cost');
    await total.waitFor();
    assert.equal(await total.innerText(), 'Cost so far: 0.25 GPU-h · energy not measured');
    assert.deepEqual(problems, []);
  });
});

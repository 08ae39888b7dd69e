/** /metrics: what the renders cost, per node, read from the cost sums at each scrape (so they survive a restart). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { JobCompletedSchema } from '@nightshift/proto';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { createCoordinatorMetrics } from './metrics.js';

test('GPU seconds, renders metered and measured, joules and their cost per node', async () => {
  const store = new EngineStore(openDb(':memory:'));
  const engine = new SqliteEngine(store);
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 3 } });
  store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  const [a, b, c] = store.jobs('sw');
  const done = (gpuMs: number, joules?: number) =>
    create(JobCompletedSchema, { renderMs: gpuMs, cost: { gpuMs, energyMeasured: joules !== undefined, energyJoules: joules ?? 0, gpuName: 'g', driverVersion: 'd' } });
  await engine.costs.record(a!.id, 'n1', done(3_600_000, 3_600_000));
  await engine.costs.record(b!.id, 'n1', done(500));
  await engine.costs.record(c!.id, 'n2', done(2_000, 720));
  const text = await createCoordinatorMetrics(engine, () => 0, 0.25).registry.metrics();
  /** The sample of `name` for `node` (other labels, such as service, whatever they are). */
  const value = (name: string, node: string) => Number(new RegExp(`^${name}\\{node="${node}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1]);
  assert.equal(value('nightshift_gpu_seconds_total', 'n1'), 3_600.5);
  assert.equal(value('nightshift_gpu_seconds_total', 'n2'), 2);
  assert.equal(value('nightshift_renders_metered_total', 'n1'), 2);
  assert.equal(value('nightshift_renders_energy_measured_total', 'n1'), 1);
  assert.equal(value('nightshift_energy_joules_total', 'n1'), 3_600_000);
  assert.equal(value('nightshift_energy_cost_total', 'n1'), 0.25);
  assert.ok(Math.abs(value('nightshift_energy_cost_total', 'n2') - 0.00005) < 1e-12);
  assert.doesNotMatch(await createCoordinatorMetrics(engine, () => 0).registry.metrics(), /nightshift_energy_cost_total/, 'no price: no cost counter');
});

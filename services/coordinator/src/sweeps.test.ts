/**
 * submitSweep on SQLite: a big sweep's nodes are offered work as each part
 * of it is stored (store-engine/sqlite.ts createSweep), not only once the
 * whole sweep is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededCoordinator, tempDir } from '@nightshift/devfarm';
import { submitSweep } from './sweeps.js';
import { SWEEP_PART_JOBS } from './store-engine/sqlite.js';

test('a sweep bigger than a part: the hub is told to dispatch after each part, the first while only it is stored', async () => {
  const tmp = tempDir();
  const seeded = seededCoordinator(tmp.dir);
  try {
    const stored = () => (seeded.db.prepare('SELECT COUNT(*) AS n FROM jobs').get() as { n: number }).n;
    const seen: number[] = [];
    const deps = { ...seeded.deps, hub: { ...seeded.deps.hub, dispatch: () => void seen.push(stored()) } };
    const { jobs } = await submitSweep(deps, { prompts: ['a lighthouse', 'a harbour'], seeds: { count: 2_500 } });
    assert.equal(jobs, 5_000);
    // Each part as it commits, then once more as the submission answers.
    assert.deepEqual(seen, [SWEEP_PART_JOBS, 2 * SWEEP_PART_JOBS, 5_000, 5_000]);
  } finally {
    seeded.close();
    tmp.cleanup();
  }
});

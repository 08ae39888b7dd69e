/**
 * submitSweep on SQLite: a big sweep's nodes are offered work as each part
 * of it is stored (store-engine/sqlite.ts createSweep), not only once the
 * whole sweep is, and the second part waits for the fills of the first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededCoordinator, tempDir } from '@nightshift/devfarm';
import { submitSweep } from './sweeps.js';
import { SWEEP_PART_JOBS } from './store-engine/sqlite.js';

const turn = () => new Promise((resolve) => setImmediate(resolve));

test('a sweep bigger than a part: the hub fills the nodes after each part, the first while only it is stored, and the next part waits for those fills', async () => {
  const tmp = tempDir();
  const seeded = seededCoordinator(tmp.dir);
  try {
    const stored = () => (seeded.db.prepare('SELECT COUNT(*) AS n FROM jobs').get() as { n: number }).n;
    const seen: number[] = [];
    let fillFirst!: () => void;
    const firstFilled = new Promise<void>((resolve) => (fillFirst = resolve));
    const dispatch = async () => {
      seen.push(stored());
      if (seen.length === 1) await firstFilled;
    };
    const submitted = submitSweep({ ...seeded.deps, hub: { ...seeded.deps.hub, dispatch } }, { prompts: ['a lighthouse', 'a harbour'], seeds: { count: 2_500 } });
    // However many turns the first fills take (up to FIRST_FILLS_WAIT_MS), the second part waits for them.
    for (let i = 0; i < 1_000 && seen.length === 0; i++) await turn();
    for (let i = 0; i < 5; i++) await turn();
    assert.deepEqual(seen, [SWEEP_PART_JOBS]);
    assert.equal(stored(), SWEEP_PART_JOBS);
    fillFirst();
    const { jobs } = await submitted;
    assert.equal(jobs, 5_000);
    // Each part as it commits, then once more as the submission answers.
    assert.deepEqual(seen, [SWEEP_PART_JOBS, 2 * SWEEP_PART_JOBS, 5_000, 5_000]);
  } finally {
    seeded.close();
    tmp.cleanup();
  }
});

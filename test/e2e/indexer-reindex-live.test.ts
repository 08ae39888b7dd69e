/**
 * A reindex from the bucket while a sweep renders, over a real farm: the
 * indexer's `hold-reindex:FILE` hook stops the reindex after its first batch
 * until the test creates FILE, so the second sweep's images are certain to be
 * rendered and indexed live while the reindex is under way (no timing luck).
 * Afterwards the catalog holds exactly the bucket's images.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFarm, tempDir, waitFor, waitForNodes } from '@nightshift/devfarm';

interface Health {
  catalog: number;
  indexed: number;
  consumer: { indexed: number };
  reindex: { running: boolean; done: number; failed: number; pruned: number; error?: string };
}

test('reindex during a live sweep: afterwards the catalog is the bucket', { timeout: 180_000 }, async () => {
  const tmp = tempDir('nightshift-reindex-live-');
  const gate = join(tmp.dir, 'release-reindex');
  const farm = await startFarm({
    dir: tmp.dir,
    nodes: 1,
    indexer: true,
    env: { NIGHTSHIFT_INDEXER_FAULT: `hold-reindex:${gate}`, NIGHTSHIFT_INDEXER_BATCH: '2', NIGHTSHIFT_INDEXER_CONCURRENCY: '1' },
  });
  const health = async () => (await (await fetch(`${farm.indexerUrl}/healthz`)).json()) as Health;
  const submit = async (prompts: string[]) => {
    const res = await fetch(`${farm.apiUrl}/api/sweeps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompts, seeds: { count: 2 }, params: { width: 64, height: 64, steps: 2 } }),
    });
    assert.equal(res.status, 201, await res.clone().text());
  };
  try {
    await waitForNodes(farm.apiUrl, 1);
    await submit(['a red circle', 'a blue square']);
    await waitFor('the first sweep indexed', async () => (await health()).catalog === 4, 90_000, 250);

    const started = await fetch(`${farm.indexerUrl}/api/reindex`, { method: 'POST' });
    assert.equal(started.status, 202, await started.clone().text());
    await waitFor('the reindex held after its first batch', async () => (await health()).reindex.done === 2, 30_000, 100);

    // While the reindex is held: a second sweep renders and is indexed live.
    await submit(['green stripes', 'a yellow triangle']);
    await waitFor('the second sweep indexed live', async () => (await health()).catalog === 8, 90_000, 250);
    assert.equal((await health()).reindex.running, true, 'still during the reindex');

    writeFileSync(gate, '');
    await waitFor('the reindex finished', async () => !(await health()).reindex.running, 60_000, 250);
    const h = await health();
    assert.equal(h.reindex.error, undefined);
    assert.equal(h.reindex.failed, 0);
    assert.equal(h.reindex.pruned, 0, 'nothing is gone from the bucket, so nothing is pruned');
    const bucket = await farm.storage.list('images');
    assert.equal(bucket.length, 8);
    assert.equal(h.catalog, bucket.length, 'catalog count = bucket count');
    assert.equal(h.indexed, bucket.length, 'every image searchable');
    const hits = (await (await fetch(`${farm.indexerUrl}/api/search?q=shape&k=50`)).json()) as { results: { key: string }[] };
    assert.deepEqual(hits.results.map((r) => r.key).sort(), [...bucket].sort());
  } finally {
    await farm.stop();
    tmp.cleanup();
  }
});

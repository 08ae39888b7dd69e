/**
 * The indexer's /metrics and /readyz over a real farm: lag drains to zero
 * once the images are indexed, search latency is recorded, readiness follows
 * NATS. (The indexer's search behaviour itself is tested in indexer-search.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FOUR_IMAGES, postSweep, startFarm, tempDir, waitFor, waitForNodes } from '@nightshift/devfarm';

test('indexer /metrics: lag, images, search latency; /readyz follows NATS', { timeout: 180_000 }, async () => {
  const tmp = tempDir('nightshift-indexer-metrics-');
  const farm = await startFarm({ dir: tmp.dir, nodes: 1, indexer: true });
  try {
    await waitForNodes(farm.apiUrl, 1);
    assert.equal((await postSweep(farm.apiUrl, FOUR_IMAGES)).status, 201);
    const metric = async (re: RegExp) => {
      const m = re.exec(await (await fetch(`${farm.indexerUrl}/metrics`)).text());
      return m ? Number(m[1]) : undefined;
    };
    await waitFor('4 images indexed', async () => (await metric(/^nightshift_indexer_images\{[^}]*\} (\d+)$/m)) === 4, 90_000, 250);
    assert.equal(await metric(/^nightshift_indexer_lag\{[^}]*consumer="indexer"[^}]*\} (\d+)$/m), 0);
    assert.equal(await metric(/^nightshift_indexer_events_total\{[^}]*result="indexed"[^}]*\} (\d+)$/m), 4);
    for (const q of ['red', 'blue']) assert.equal((await fetch(`${farm.indexerUrl}/api/search?q=${q}&k=2`)).status, 200);
    assert.equal(await metric(/^nightshift_search_seconds_count\{[^}]*status="200"[^}]*\} (\d+)$/m), 2);
    const ready = await fetch(`${farm.indexerUrl}/readyz`);
    assert.equal(ready.status, 200, await ready.clone().text());
    assert.deepEqual(((await ready.json()) as { checks: unknown }).checks, { nats: 'ok', s3: 'ok', catalog: 'ok' });
    await farm.nats.stop();
    try {
      await waitFor('indexer not ready without NATS', async () => (await fetch(`${farm.indexerUrl}/readyz`)).status === 503, 10_000);
      assert.equal((await fetch(`${farm.indexerUrl}/healthz`)).status, 200);
    } finally {
      await farm.nats.start();
    }
    await waitFor('indexer ready again', async () => (await fetch(`${farm.indexerUrl}/readyz`)).status === 200, 20_000);
  } finally {
    await farm.stop();
    tmp.cleanup();
  }
});

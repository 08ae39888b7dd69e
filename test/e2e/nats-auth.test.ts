/**
 * A farm whose NATS requires a user and password: every service connects
 * with the credentials it is configured with (connectBus reads them), the
 * images get from the coordinator's outbox through JetStream to the indexer,
 * the stream carries the configured limits, and a client without the
 * credentials, or with a wrong password, is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '@nats-io/transport-node';
import { connectBus, STREAM } from '@nightshift/common';
import { FOUR_IMAGES, postSweep, startFarm, tempDir, waitFor, waitForNodes } from '@nightshift/devfarm';

const AUTH = { user: 'nightshift', password: 'a-farm-secret' };

test('NATS with a user and password: the farm works with them, clients without them are refused', { timeout: 180_000 }, async () => {
  const tmp = tempDir('nightshift-nats-auth-');
  const farm = await startFarm({ dir: tmp.dir, nodes: 1, indexer: true, natsAuth: AUTH, env: { NIGHTSHIFT_STREAM_MAX_AGE_HOURS: '2', NIGHTSHIFT_STREAM_MAX_BYTES: String(64 * 1024 * 1024) } });
  try {
    await waitForNodes(farm.apiUrl, 1);
    assert.equal((await postSweep(farm.apiUrl, FOUR_IMAGES)).status, 201);
    // Published by the coordinator, consumed by the indexer: both authenticated.
    await waitFor('4 images indexed', async () => ((await (await fetch(`${farm.indexerUrl}/healthz`)).json()) as { indexed: number }).indexed === 4, 90_000, 250);
    const ready = await fetch(`${farm.apiUrl}/readyz`);
    assert.equal(ready.status, 200, await ready.clone().text());

    // Without credentials, or with a wrong password: refused.
    await assert.rejects(connect({ servers: farm.nats.reachUrl, reconnect: false }), /authorization/i);
    await assert.rejects(connect({ servers: farm.nats.reachUrl, reconnect: false, user: AUTH.user, pass: 'wrong' }), /authorization/i);
    // connectBus keeps retrying a refused login (the server may be fixed meanwhile) until told to stop.
    await assert.rejects(connectBus(farm.nats.reachUrl, 'test', AbortSignal.timeout(1_500), {}), /stopped before NATS/);

    // With them: the stream is there, with the limits the services were configured with.
    const bus = await connectBus(farm.nats.reachUrl, 'test', undefined, AUTH);
    try {
      const info = await bus.jsm.streams.info(STREAM);
      assert.equal(info.config.max_age, 2 * 3_600 * 1e9);
      assert.equal(info.config.max_bytes, 64 * 1024 * 1024);
      assert.ok(info.state.messages >= 4, `${info.state.messages} events in the stream`);
    } finally {
      await bus.nc.close();
    }
  } finally {
    await farm.stop();
    tmp.cleanup();
  }
});

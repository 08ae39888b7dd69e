/**
 * With NIGHTSHIFT_API_TOKEN set, every API client authenticates: HTTP with
 * `Authorization: Bearer`, gRPC SweepService with the same metadata.
 * (The coordinator starts without NATS or S3 reachable; neither is needed here.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createLogger, loadConfig } from '@nightshift/common';
import { freePort, tempDir } from '@nightshift/devfarm';
import { createClient, SweepService } from '@nightshift/proto';
import { startCoordinator, type RunningCoordinator } from '@nightshift/coordinator';

const TOKEN = 'api-token-for-the-test';
const tmp = tempDir('nightshift-apitoken-');
let coordinator: RunningCoordinator;

before(async () => {
  const closed = await freePort();
  coordinator = await startCoordinator(
    loadConfig({
      NIGHTSHIFT_DATA_DIR: join(tmp.dir, 'coord'),
      NIGHTSHIFT_API_TOKEN: TOKEN,
      NIGHTSHIFT_NODE_TOKEN: 'node-token-for-the-test',
      NIGHTSHIFT_HTTP_PORT: '0',
      NIGHTSHIFT_GRPC_PORT: String(await freePort()),
      NIGHTSHIFT_NATS_URL: `nats://127.0.0.1:${closed}`,
      NIGHTSHIFT_S3_ENDPOINT: `http://127.0.0.1:${closed}`,
    }),
    createLogger('coordinator', 'silent'),
  );
});

after(async () => {
  await coordinator.stop();
  tmp.cleanup();
});

test('HTTP: 401 without the token, 200 with it', async () => {
  const url = `http://127.0.0.1:${coordinator.httpPort}/api/sweeps`;
  assert.equal((await fetch(url)).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: 'Bearer wrong' } })).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
});

test('gRPC SweepService: UNAUTHENTICATED without the token, served with it', async () => {
  const client = createClient(SweepService, `127.0.0.1:${coordinator.grpcPort}`);
  try {
    const spec = JSON.stringify({ prompts: ['x'], seeds: [1] });
    const none = new grpc.Metadata();
    const wrong = new grpc.Metadata();
    wrong.set('authorization', 'Bearer wrong');
    for (const meta of [none, wrong]) {
      await assert.rejects(client.listSweeps({}, meta), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED);
      await assert.rejects(client.submitSweep({ specJson: spec }, meta), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED);
    }
    const good = new grpc.Metadata();
    good.set('authorization', `Bearer ${TOKEN}`);
    const { id, jobs } = await client.submitSweep({ specJson: spec }, good);
    assert.equal(jobs, 1);
    assert.equal((await client.getSweep({ id }, good)).sweep?.id, id);
    // Nothing was stored by the refused submissions.
    assert.equal((await client.listSweeps({}, good)).sweeps.length, 1);
  } finally {
    client.close();
  }
});

/**
 * ModelCacheState travels on Register and on every Heartbeat: a real gRPC
 * NodeService (standing in for the coordinator, recording what it is sent)
 * and a node's Connection over a NodeModels that pulled a model from s3rver.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { createLogger, sleep, Storage } from '@nightshift/common';
import { startS3Server, tempDir, type S3Server } from '@nightshift/devfarm';
import { addService, ConnectResponseSchema, NodeService, type ConnectRequest, type ConnectResponse, type ModelCacheState } from '@nightshift/proto';
import { addModel } from '@nightshift/registry';
import { Connection } from './connection.js';
import { NodeModels } from './model-pull.js';

const log = createLogger('model-state-test', 'silent');
let tmp: ReturnType<typeof tempDir>;
let s3: S3Server;
let server: grpc.Server;
let port: number;
const received: ConnectRequest[] = [];

before(async () => {
  tmp = tempDir('nightshift-model-state-');
  s3 = await startS3Server(path.join(tmp.dir, 's3'));
  server = new grpc.Server();
  addService(server, NodeService, {
    connect: (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
      call.on('data', (req: ConnectRequest) => {
        received.push(req);
        if (req.msg.case === 'register') call.write(create(ConnectResponseSchema, { msg: { case: 'registered', value: { nodeId: req.msg.value.nodeId, heartbeatIntervalMs: 50, leaseMs: 10_000 } } }));
      });
      call.on('end', () => call.end());
    },
  });
  port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
});
after(async () => {
  server?.forceShutdown();
  await s3?.stop();
  tmp?.cleanup();
});

async function until(what: string, fn: () => boolean): Promise<void> {
  const end = Date.now() + 20_000;
  while (!fn()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('the node tells the coordinator what its cache holds, on Register and every Heartbeat', async () => {
  const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  await storage.ensureBucket();
  const file = path.join(tmp.dir, 'weights.bin');
  writeFileSync(file, Buffer.alloc(300_000, 5));
  const { manifest } = await addModel(storage, 'state-model', 'generator-asset', file);
  const models = new NodeModels({ settings: { dir: path.join(tmp.dir, 'cache'), capBytes: 1e9, attempts: 2, retryDelayMs: 10 }, storage, log, rateMinBytes: 0 });
  const held = await models.use(manifest.hash, 'state-model', new AbortController().signal);
  held.release();

  const connection = new Connection({
    address: `127.0.0.1:${port}`,
    nodeId: 'state-node',
    name: 'state-node',
    capabilities: { gpuName: 'test', vramMb: 1024, backends: ['exec'], models: [], slots: 1 },
    heldJobIds: () => [],
    onAssign: () => {},
    onCancel: () => {},
    modelState: () => models.state(),
    log,
  });
  connection.start();
  try {
    const heartbeats = () => received.filter((r) => r.msg.case === 'heartbeat' && r.msg.value.models);
    await until('two heartbeats', () => heartbeats().length >= 2);
    const register = received.find((r) => r.msg.case === 'register');
    const sent: (ModelCacheState | undefined)[] = [register, ...heartbeats()].map((r) => (r?.msg.case === 'register' || r?.msg.case === 'heartbeat' ? r.msg.value.models : undefined));
    for (const m of sent) {
      assert.ok(m, 'model state on every message');
      assert.deepEqual(m.cachedHashes, [manifest.hash]);
      assert.equal(m.loadedHash, manifest.hash);
      assert.deepEqual(m.downloads, []);
      assert.ok(m.downloadBytesPerS > 0);
    }
  } finally {
    connection.close();
  }
});

test('a restarted node lists the models it kept before any job needs one', async () => {
  const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  const file = path.join(tmp.dir, 'kept.bin');
  writeFileSync(file, Buffer.alloc(1000, 9));
  const { manifest } = await addModel(storage, 'kept-model', 'generator-asset', file);
  const settings = { dir: path.join(tmp.dir, 'restart-cache'), capBytes: 1e9, attempts: 2, retryDelayMs: 10 };
  const before = new NodeModels({ settings, storage, log });
  (await before.use(manifest.hash, 'kept-model', new AbortController().signal)).release();
  const after = new NodeModels({ settings, storage, log });
  await after.open();
  const state = after.state();
  assert.deepEqual(state.cachedHashes, [manifest.hash]);
  assert.equal(state.loadedHash, '', 'nothing is loaded after a restart');
  assert.equal(state.downloadBytesPerS, 0, 'no download measured yet in this run');
});

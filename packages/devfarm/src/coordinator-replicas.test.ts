import { test } from 'node:test';
import assert from 'node:assert/strict';
import { replicaLayouts } from './coordinator-replicas.js';

test('replica 0 keeps the one-coordinator layout; the others get their own ports, folders and logs', async () => {
  const layouts = await replicaLayouts('/farm', 3, { http: 8080, grpc: 7070 });
  assert.deepEqual(layouts[0], { index: 0, httpPort: 8080, grpcPort: 7070, dataDir: '/farm/coordinator', logFile: '/farm/logs/coordinator.log', env: {} });
  assert.deepEqual(layouts.map((l) => [l.dataDir, l.logFile]).slice(1), [
    ['/farm/coordinator-1', '/farm/logs/coordinator-1.log'],
    ['/farm/coordinator-2', '/farm/logs/coordinator-2.log'],
  ]);
  const ports = layouts.flatMap((l) => [l.httpPort, l.grpcPort]);
  assert.equal(new Set(ports).size, 6, `ports given twice: ${ports}`);
  for (const l of layouts.slice(1)) assert.deepEqual(l.env, { NIGHTSHIFT_HTTP_PORT: String(l.httpPort), NIGHTSHIFT_GRPC_PORT: String(l.grpcPort) });
});

test('a replica count outside 1-16 is refused', async () => {
  for (const n of [0, 17, 1.5]) await assert.rejects(replicaLayouts('/farm', n, { http: 1, grpc: 2 }), /replicas: .*use 1-16/);
});

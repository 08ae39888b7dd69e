/**
 * gRPC WatchSweep and revocation (issue 16 review): a watch opened with a
 * key ends with UNAUTHENTICATED at the first update after the key is
 * revoked, sending nothing more. A real grpc-js server on loopback.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { addService, createClient, SweepService } from '@nightshift/proto';
import { seededCoordinator, tempDir, type SeededCoordinator } from '@nightshift/devfarm';
import { sweepHandlers } from './sweep-grpc.js';
import { Live } from './live.js';
import { keyHash } from './callers.js';
import { submitSweep } from './sweeps.js';

let tmp: ReturnType<typeof tempDir>;
let seeded: SeededCoordinator;
let server: grpc.Server;
let address = '';
const live = new Live();

before(async () => {
  tmp = tempDir();
  seeded = seededCoordinator(tmp.dir, { NIGHTSHIFT_API_TOKEN: 'farm-token' });
  server = new grpc.Server();
  addService(server, SweepService, sweepHandlers({ ...seeded.deps, live }));
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  address = `127.0.0.1:${port}`;
});
after(async () => {
  await new Promise<void>((r) => server.tryShutdown(() => r()));
  seeded.close();
  tmp.cleanup();
});

// The timeout only turns a watch that never ends (the bug) into a failure; nothing is timed.
test('a watch ends with UNAUTHENTICATED at the first update after its key is revoked', { timeout: 30_000 }, async () => {
  const { store } = seeded;
  assert.ok(store.addKey({ name: 'gil', admin: false, weight: 1, quotaImages: null }, keyHash('k-gil')));
  const { id } = await submitSweep(seeded.deps, { prompts: ['gil'], seeds: [1, 2] }, undefined, undefined, { user: 'gil', admin: false });
  const client = createClient(SweepService, address);
  try {
    const meta = new grpc.Metadata();
    meta.set('authorization', 'Bearer k-gil');
    const stream = client.watchSweep({ id }, meta);
    const updates: string[] = [];
    const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
      stream.on('data', (m: { sweep?: { status: string } }) => updates.push(m.sweep?.status ?? '?'));
      stream.on('error', (e: grpc.ServiceError) => resolve(e));
      stream.on('end', () => resolve(undefined));
    });
    // The first update is sent at once: the watch is open.
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    assert.equal(store.revokeKeys('gil'), 1);
    live.emit({ type: 'sweep', sweepId: id });
    const err = await ended;
    assert.equal(err?.code, grpc.status.UNAUTHENTICATED, `the watch went on after revocation: ${String(err)}`);
    assert.equal(updates.length, 1, 'nothing was sent after the revocation');
  } finally {
    client.close();
  }
});

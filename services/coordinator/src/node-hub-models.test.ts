/** The hub and registry models: cache state from Register and Heartbeat, model_hash on assignments, model_unavailable failures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeStream, setup, until } from './node-hub-test-helpers.js';

const H = 'c'.repeat(64);

test('the hub keeps what each node reports of its model cache, from Register and every Heartbeat', async () => {
  const { store, hub } = setup();
  const stream = new FakeStream(store);
  hub.handle(stream);
  stream.say({
    case: 'register',
    value: { nodeId: 'n1', name: 'n1', capabilities: { backends: ['onnx'], models: [], vramMb: 24_000n, slots: 1 }, models: { cachedHashes: [H], loadedHash: '', downloadBytesPerS: 0 } },
  });
  await until(() => hub.models.of('n1') !== undefined);
  assert.deepEqual(hub.models.of('n1'), { cached: [H], loaded: '', downloads: [], bytesPerS: 0 });
  assert.deepEqual(hub.onlineCaps()[0]!.models, hub.models.of('n1'));
  stream.say({ case: 'heartbeat', value: { runningJobIds: [], models: { cachedHashes: [H], loadedHash: H, downloads: [{ hash: 'd'.repeat(64), name: 'next', bytesDone: 5n, bytesTotal: 10n }], downloadBytesPerS: 1e6 } } });
  await until(() => hub.models.of('n1')?.loaded === H);
  assert.deepEqual(hub.models.of('n1'), { cached: [H], loaded: H, downloads: [{ hash: 'd'.repeat(64), name: 'next', bytesDone: 5, bytesTotal: 10 }], bytesPerS: 1e6 });
  assert.deepEqual(hub.models.holders(H), ['n1']);
  // A heartbeat without a cache state changes nothing.
  stream.say({ case: 'heartbeat', value: { runningJobIds: [] } });
  await new Promise((r) => setImmediate(r));
  assert.equal(hub.models.of('n1')?.loaded, H);
});

test('assignments carry the sweep\'s model hash; model_unavailable sends the job elsewhere without an attempt', async () => {
  const { store, connect } = setup({ prefetchPerSlot: 1 });
  store.createSweep(
    { name: 'reg', spec: {}, priority: 10, backend: 'procedural', model: 'castle-xl', modelHash: H, modelBytes: 1_000 },
    [0, 1].map((i) => ({ index: i, renderKey: `rk-${i}`, prompt: 'p', seed: i, params: {}, axes: {}, backend: 'procedural', model: 'castle-xl', minVramMb: 0 })),
    'sw-reg',
  );
  const a = connect('a');
  const b = connect('b');
  const assigned = (s: FakeStream) => s.sent.flatMap((m) => (m.msg.msg.case === 'assign' ? [m.msg.msg.value] : []));
  await until(() => assigned(a).length === 1 && assigned(b).length === 1);
  const onA = assigned(a)[0]!;
  assert.equal(onA.sweepId, 'sw-reg', 'the higher-priority registry sweep first');
  assert.equal(onA.modelHash, H);
  assert.equal(onA.model, 'castle-xl');

  a.say({ case: 'failed', value: { jobId: onA.jobId, error: 'cannot fetch the model: S3 unreachable', modelUnavailable: true } });
  await until(() => store.getJob(onA.jobId)!.state === 'queued');
  const job = store.getJob(onA.jobId)!;
  assert.equal(job.attempts, 0, 'not counted as an attempt');
  assert.deepEqual(store.exclusions(job.id), ['a']);
  assert.equal(store.blockedNodes('sw-reg').length, 0);
  // a is refilled, but never with that job.
  await until(() => assigned(a).length === 2);
  assert.notEqual(assigned(a)[1]!.jobId, onA.jobId);
});

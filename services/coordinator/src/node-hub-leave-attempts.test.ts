/**
 * A node leaving the farm (schedule, busy GPU, pause) hands its jobs back
 * (Availability.released_job_ids): that spends none of a job's
 * NIGHTSHIFT_MAX_ATTEMPTS, however often it happens. A node that comes back
 * without a job it held (it crashed, say) still spends the attempt.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeStream, setup, until } from './node-hub-test-helpers.js';

const leave = (releasedJobIds: string[]) => ({ case: 'availability' as const, value: { accepting: false, reason: 'schedule', untilMs: 0n, untilLocal: '', releasedJobIds } });
const rejoin = { case: 'availability' as const, value: { accepting: true, reason: '', untilMs: 0n, untilLocal: '', releasedJobIds: [] } };

test('leaving and rejoining six times spends no attempt; a real failure afterwards is retried, not final', async () => {
  const { store, hub, connect } = setup();
  const node = connect('n1');
  await until(() => store.leasedTo('n1').length === 2);
  for (let night = 0; night < 6; night++) {
    node.say(leave(store.leasedTo('n1').map((j) => j.id)));
    await until(() => store.leasedTo('n1').length === 0);
    assert.deepEqual(store.jobs('sw').map((j) => j.attempts), [0, 0, 0, 0], `night ${night}: handed back, nothing spent`);
    node.say(rejoin);
    await until(() => store.leasedTo('n1').length === 2);
  }
  const [job] = store.leasedTo('n1');
  assert.equal(job!.attempts, 1, 'the lease it holds now is its first attempt');
  node.say({ case: 'failed', value: { jobId: job!.id, error: 'boom', outOfMemory: false, logTail: '' } });
  await until(() => store.getJob(job!.id)!.state !== 'leased');
  assert.equal(store.getJob(job!.id)!.state, 'queued', 'one failure of three allowed: retried');
  hub.stop();
});

test('a node that reconnects without the jobs it held spends their attempts (it may have crashed on them)', async () => {
  const { store, hub, connect } = setup();
  connect('n1');
  await until(() => store.leasedTo('n1').length === 2);
  const held = store.leasedTo('n1').map((j) => j.id);
  hub.stop();
  // A coordinator on the same database; n1 comes back paused, holding nothing.
  const again = setup(undefined, undefined, store.db);
  const stream = new FakeStream(again.store);
  again.hub.handle(stream);
  stream.say({ case: 'register', value: { nodeId: 'n1', name: 'n1', capabilities: { backends: ['procedural'], models: [], vramMb: 24_000n, slots: 1 }, availability: { accepting: false, reason: 'paused', untilMs: 0n, untilLocal: '' } } });
  await until(() => held.every((id) => again.store.getJob(id)!.state === 'queued'));
  assert.deepEqual(held.map((id) => again.store.getJob(id)!.attempts), [1, 1]);
  again.hub.stop();
});

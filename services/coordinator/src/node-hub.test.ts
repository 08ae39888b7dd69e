/** The node hub over an in-memory Store with stand-in Connect streams: sessions, messages and group commit, no gRPC server. Untrusted nodes: node-hub-trust.test.ts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { FakeStream, done, setup, until } from './node-hub-test-helpers.js';

test('a registering node is told after the commit: registered, then leases up to its prefetch capacity', async () => {
  const { store, hub, heard, connect } = setup();
  const node = connect('n1');
  await turn();
  assert.deepEqual(node.cases(), ['registered', 'assign', 'assign']);
  assert.ok(node.sent.every((s) => !s.inTransaction), 'nothing is written to a node while the transaction is open');
  const assigned = node.sent.flatMap((s) => (s.msg.msg.case === 'assign' ? [s.msg.msg.value.jobId] : []));
  assert.deepEqual(store.leasedTo('n1').map((j) => j.id).sort(), assigned.sort(), 'what the node was told is what is committed');
  assert.equal(heard.length, 1, 'the register, its lease and the node.up event are one commit');
  assert.equal(heard[0]!.outbox, true);
  assert.deepEqual(heard[0]!.events, [{ type: 'node', nodeId: 'n1', status: 'online' }, { type: 'sweep', sweepId: 'sw' }]);
  hub.stop();
});

test('messages of one event-loop turn are handled in one transaction', async () => {
  const { store, hub, heard, connect } = setup({}, (real) => ({
    relaxExclusions: () => real.relaxExclusions(),
    worthCopying: (id, now) => real.worthCopying(id, now),
    recordFailure: (id, node, failure) => real.recordFailure(id, node, failure),
  }));
  const node = connect('n1');
  await turn();
  heard.length = 0;
  const [a, b] = store.leasedTo('n1');
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id, b!.id] } });
  node.say({ case: 'failed', value: { jobId: a!.id, error: 'boom', outOfMemory: false, logTail: '' } });
  node.say({ case: 'failed', value: { jobId: b!.id, error: 'boom', outOfMemory: false, logTail: '' } });
  await turn();
  assert.equal(heard.length, 1, 'one commit for the batch');
  assert.deepEqual(heard[0]!.events.map((e) => e.type), ['job', 'job', 'sweep']);
  hub.stop();
});

test('a reported result counts once its image is found in storage, in a later transaction; the report refills the node', async () => {
  const { store, hub, heard, connect, storage } = setup();
  const node = connect('n1');
  await turn();
  heard.length = 0;
  const [a, b] = store.leasedTo('n1');
  storage.upload(a!);
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id, b!.id] } });
  node.say(done(a!));
  node.say({ case: 'progress', value: { jobId: b!.id, step: 3, total: 10 } });
  await turn();
  assert.equal(store.getJob(a!.id)!.state, 'leased', 'not done before storage answered');
  assert.equal(heard.length, 0);
  await until(() => store.getJob(a!.id)!.state === 'done');
  assert.equal(storage.heads, 2, 'image and thumbnail looked up');
  assert.equal(heard.length, 1, 'one commit for the verified result');
  assert.deepEqual(heard[0]!.events.map((e) => e.type), ['job', 'sweep']);
  assert.deepEqual(node.cases().slice(3), ['assign'], 'the free slot is filled after the report');
  hub.stop();
});

test('a failure report goes to placement; the hub records nothing itself', async () => {
  const calls: unknown[][] = [];
  const { store, hub, connect } = setup({}, (real) => ({
    relaxExclusions: () => real.relaxExclusions(),
    worthCopying: (id, now) => real.worthCopying(id, now),
    recordFailure: (...args) => {
      calls.push(args);
      return undefined;
    },
  }));
  const node = connect('n1');
  await turn();
  const [a] = store.leasedTo('n1');
  node.say({ case: 'failed', value: { jobId: a!.id, error: 'CUDA out of memory', outOfMemory: true, logTail: 'tail' } });
  await turn();
  assert.deepEqual(calls, [[a!.id, { id: 'n1', vramMb: 24_000 }, { error: 'CUDA out of memory', logTail: 'tail', outOfMemory: true }]]);
  assert.equal(store.getJob(a!.id)!.state, 'leased', 'the stand-in placement recorded nothing');
  hub.stop();
});

test('a silent node is marked down: its jobs are requeued and its stream ended', async () => {
  const { store, hub, heard, connect } = setup({ nodeTimeoutMs: 1 });
  const node = connect('n1');
  await turn();
  assert.equal(store.leasedTo('n1').length, 2);
  heard.length = 0;
  await new Promise((r) => setTimeout(r, 5));
  hub.tick();
  assert.equal(node.ended, true);
  assert.deepEqual(hub.connectedNodeIds(), []);
  assert.equal(store.leasedTo('n1').length, 0);
  assert.equal(store.counts('sw').queued, 4);
  assert.equal(heard.length, 1);
  assert.ok(heard[0]!.events.some((e) => e.type === 'node' && e.status === 'down'));
  hub.stop();
});

test('progress goes to live clients directly (nothing durable changes)', async () => {
  const { store, hub, progress, connect } = setup();
  const node = connect('n1');
  await turn();
  const [a] = store.leasedTo('n1');
  node.say({ case: 'progress', value: { jobId: a!.id, step: 1, total: 4 } });
  await turn();
  assert.deepEqual(progress.filter((e) => e.type === 'progress'), [{ type: 'progress', sweepId: 'sw', jobId: a!.id, step: 1, total: 4 }]);
  hub.stop();
});

test('a database error in the tick is caught, logged, shown by the readiness check and retried by the next tick', async () => {
  const { store, hub } = setup();
  const real = store.expireLeases.bind(store);
  let fail = true;
  store.expireLeases = () => {
    if (fail) throw new Database.SqliteError('database is locked', 'SQLITE_BUSY');
    return real();
  };
  assert.equal(hub.health.check(), 'ok');
  assert.doesNotThrow(() => hub.tick());
  assert.throws(() => hub.health.check(), /tick: database is locked \(1 failed runs/);
  hub.tick();
  assert.throws(() => hub.health.check(), /2 failed runs/);
  fail = false;
  hub.tick();
  assert.equal(hub.health.check(), 'ok');
  hub.stop();
});

test('a database error in the inbox flush rolls the batch back and retries it; nodes hear nothing of the failed try', async () => {
  const { store, hub, connect, storage } = setup();
  const node = connect('n1');
  await turn();
  const [a, b] = store.leasedTo('n1');
  storage.upload(a!);
  node.say(done(a!));
  await until(() => store.getJob(a!.id)!.state === 'done');
  const real = store.renewLeases.bind(store);
  let failures = 2;
  store.renewLeases = (...args) => {
    if (failures-- > 0) throw new Database.SqliteError('database or disk is full', 'SQLITE_FULL');
    return real(...args);
  };
  const sent = node.sent.length;
  node.say({ case: 'heartbeat', value: { runningJobIds: [b!.id] } });
  node.say({ case: 'failed', value: { jobId: b!.id, error: 'boom', outOfMemory: false, logTail: '' } });
  await turn();
  assert.throws(() => hub.health.check(), /inbox: database or disk is full/);
  assert.equal(store.getJob(b!.id)!.state, 'leased', 'the failure report was rolled back with its batch');
  assert.equal(node.sent.length, sent, 'nothing was sent for the rolled-back batch');
  await until(() => store.getJob(b!.id)!.state === 'queued');
  assert.equal(hub.health.check(), 'ok');
  assert.equal(failures, -1, 'retried until the database took it');
  assert.equal(store.getJob(b!.id)!.error, 'boom', 'the retried batch is the same batch');
  hub.stop();
});

test('a message that fails for its own reasons is rolled back alone; the rest of its batch commits', async () => {
  const { store, hub, connect } = setup();
  const node = connect('n1');
  await turn();
  const stranger = new FakeStream(store);
  hub.handle(stranger);
  stranger.say({ case: 'heartbeat', value: { runningJobIds: [] } }); // before register: refused
  const [a] = store.leasedTo('n1');
  node.say({ case: 'failed', value: { jobId: a!.id, error: 'boom', outOfMemory: false, logTail: '' } });
  await turn();
  assert.equal(hub.health.check(), 'ok');
  assert.notEqual(store.getJob(a!.id)!.state, 'leased');
  hub.stop();
});

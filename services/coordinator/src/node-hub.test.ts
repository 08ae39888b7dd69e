/** The node hub over an in-memory SQLite engine with stand-in Connect streams: sessions, messages in each node's line, no gRPC server. Untrusted nodes: node-hub-trust.test.ts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { FakeStream, cancels, done, setup, until } from './node-hub-test-helpers.js';
import { memoJson } from './store/sweeps.js';

test('a registering node is told after the commit: registered, then leases up to its prefetch capacity', async () => {
  const { store, hub, heard, connect } = setup();
  const node = connect('n1');
  await hub.settled();
  assert.deepEqual(node.cases(), ['registered', 'assign', 'assign']);
  assert.ok(node.sent.every((s) => !s.inTransaction), 'nothing is written to a node while a transaction is open');
  const assigned = node.sent.flatMap((s) => (s.msg.msg.case === 'assign' ? [s.msg.msg.value.jobId] : []));
  assert.deepEqual(store.leasedTo('n1').map((j) => j.id).sort(), assigned.sort(), 'what the node was told is what is committed');
  const events = heard.flatMap((c) => c.events);
  assert.deepEqual(events[0], { type: 'node', nodeId: 'n1', status: 'online' }, 'online first, then its leases');
  assert.ok(events.some((e) => e.type === 'sweep' && e.sweepId === 'sw'));
  assert.ok(heard.some((c) => c.outbox), 'node.up announced');
  hub.stop();
});

test("one node's messages run one at a time, in order, and its refills never lease past its capacity", async () => {
  const { store, hub, connect } = setup({}, (real) => ({
    relaxExclusions: () => real.relaxExclusions(),
    worthCopying: (id, now) => real.worthCopying(id, now),
    recordFailure: (id, node, failure) => real.recordFailure(id, node, failure),
  }));
  const node = connect('n1');
  await hub.settled();
  // Whenever the node is sent a job, what it holds then is within its prefetch capacity (1 slot × 2).
  const heldAtAssign: number[] = [];
  const write = node.write.bind(node);
  node.write = (msg) => {
    if (msg.msg.case === 'assign') heldAtAssign.push(store.leasedTo('n1').length);
    return write(msg);
  };
  const [a, b] = store.leasedTo('n1');
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id, b!.id] } });
  node.say({ case: 'failed', value: { jobId: a!.id, error: 'boom', outOfMemory: false, logTail: '' } });
  node.say({ case: 'failed', value: { jobId: b!.id, error: 'boom', outOfMemory: false, logTail: '' } });
  void hub.dispatch('n1');
  await hub.settled();
  assert.equal(store.getJob(a!.id)!.error, 'boom');
  assert.equal(store.getJob(b!.id)!.error, 'boom');
  assert.ok(heldAtAssign.length >= 2, 'both failures were refilled');
  assert.ok(heldAtAssign.every((n) => n <= 2), `held at each assignment: ${heldAtAssign.join(', ')}`);
  assert.equal(store.leasedTo('n1').length, 2);
  hub.stop();
});

test('a reported result counts once its image is found in storage, in a later transaction; the report refills the node', async () => {
  const { store, hub, heard, connect, storage } = setup();
  const node = connect('n1');
  await hub.settled();
  heard.length = 0;
  const [a, b] = store.leasedTo('n1');
  storage.upload(a!);
  const release = storage.hold();
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id, b!.id] } });
  node.say(done(a!));
  node.say({ case: 'progress', value: { jobId: b!.id, step: 3, total: 10 } });
  await hub.settled();
  assert.equal(store.getJob(a!.id)!.state, 'leased', 'not done before storage answered');
  assert.equal(heard.length, 0);
  release();
  await until(() => store.getJob(a!.id)!.state === 'done');
  await hub.settled();
  assert.equal(storage.heads, 1, 'the image looked up (uploaded after its thumbnail, it marks the render stored)');
  assert.equal(heard.length, 1, 'the verified result and the refill commit together, at the end of their turn');
  assert.deepEqual(heard[0]!.events.map((e) => e.type), ['job', 'sweep'], 'the result (its job done) and the refill (a lease changes its sweep)');
  assert.equal(store.leasedTo('n1').length, 2, 'refilled in the same commit');
  assert.deepEqual(node.cases().slice(3), ['assign'], 'the free slot is filled after the report');
  hub.stop();
});

test('a failure report goes to placement; the hub records nothing itself', async () => {
  const calls: unknown[][] = [];
  const { store, hub, connect } = setup({}, (real) => ({
    relaxExclusions: () => real.relaxExclusions(),
    worthCopying: (id, now) => real.worthCopying(id, now),
    recordFailure: async (...args) => {
      calls.push(args);
      return undefined;
    },
  }));
  const node = connect('n1');
  await hub.settled();
  const [a] = store.leasedTo('n1');
  node.say({ case: 'failed', value: { jobId: a!.id, error: 'CUDA out of memory', outOfMemory: true, logTail: 'tail' } });
  await hub.settled();
  assert.deepEqual(calls, [[a!.id, { id: 'n1', vramMb: 24_000 }, { error: 'CUDA out of memory', logTail: 'tail', outOfMemory: true }]]);
  assert.equal(store.getJob(a!.id)!.state, 'leased', 'the stand-in placement recorded nothing');
  hub.stop();
});

test('a silent node is marked down: its jobs are requeued and its stream ended', async () => {
  const { store, hub, heard, connect } = setup({ nodeTimeoutMs: 1 });
  const node = connect('n1');
  await hub.settled();
  assert.equal(store.leasedTo('n1').length, 2);
  heard.length = 0;
  await new Promise((r) => setTimeout(r, 5));
  await hub.tick();
  await hub.settled();
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
  await hub.settled();
  const [a] = store.leasedTo('n1');
  node.say({ case: 'progress', value: { jobId: a!.id, step: 1, total: 4 } });
  await hub.settled();
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
  await hub.tick(); // resolves: the failure is caught
  assert.throws(() => hub.health.check(), /tick: database is locked \(1 failed runs/);
  await hub.tick();
  assert.throws(() => hub.health.check(), /2 failed runs/);
  fail = false;
  await hub.tick();
  assert.equal(hub.health.check(), 'ok');
  hub.stop();
});

test('a database error on a node message shows in the readiness check until a message goes through; a verified result is recorded once the database takes it', async () => {
  const { store, hub, connect, storage } = setup();
  const node = connect('n1');
  await hub.settled();
  const [a, b] = store.leasedTo('n1');
  const realRenew = store.renewLeases.bind(store);
  let renewFailures = 1;
  store.renewLeases = (...args) => {
    if (renewFailures-- > 0) throw new Database.SqliteError('database or disk is full', 'SQLITE_FULL');
    return realRenew(...args);
  };
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id, b!.id] } });
  await hub.settled();
  assert.throws(() => hub.health.check(), /inbox: database or disk is full/);
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id, b!.id] } });
  await hub.settled();
  assert.equal(hub.health.check(), 'ok', 'the next heartbeat went through');

  // A finished image is never dropped for a passing failure: its recording is tried again.
  const realComplete = store.completeJob.bind(store);
  let completeFailures = 2;
  store.completeJob = (...args) => {
    if (completeFailures-- > 0) throw new Database.SqliteError('database is locked', 'SQLITE_BUSY');
    return realComplete(...args);
  };
  storage.upload(a!);
  const sent = node.sent.length;
  node.say(done(a!));
  await until(() => store.getJob(a!.id)!.state === 'done');
  assert.equal(completeFailures, -1, 'recorded on the third try');
  await until(() => node.cases().slice(sent).includes('assign'));
  assert.equal(hub.health.check(), 'ok');
  hub.stop();
});

test('a message that fails for its own reasons is rolled back alone; the rest of its batch commits', async () => {
  const { store, hub, connect } = setup();
  const node = connect('n1');
  await hub.settled();
  const stranger = new FakeStream(store);
  hub.handle(stranger);
  stranger.say({ case: 'heartbeat', value: { runningJobIds: [] } }); // before register: refused
  const [a] = store.leasedTo('n1');
  node.say({ case: 'failed', value: { jobId: a!.id, error: 'boom', outOfMemory: false, logTail: '' } });
  await hub.settled();
  assert.equal(hub.health.check(), 'ok');
  assert.notEqual(store.getJob(a!.id)!.state, 'leased');
  hub.stop();
});

test("a wake (another replica queued work) fills this replica's nodes; wakes during a fill make one more fill, not one each", async () => {
  const { store, hub, connect } = setup();
  const node = connect('n1', { slots: 4 }); // room for 8; the setup's sweep has 4
  await hub.settled();
  const assigned = () => node.cases().filter((c) => c === 'assign').length;
  assert.equal(assigned(), 4);
  // Written as another replica would: nothing here hears of it.
  const spec = parseSpec({ prompts: ['elsewhere'], seeds: { count: 10 } });
  store.createSweep({ name: 'other', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw-other');
  await hub.settled();
  assert.equal(assigned(), 4, 'no fill without a wake or a tick');
  hub.wake();
  hub.wake();
  hub.wake();
  await hub.settled();
  await until(() => assigned() === 8);
  assert.equal(store.leasedTo('n1').length, 8, 'filled to its capacity, not past it');
  hub.stop();
});

test('a stream that ends while its register waits in the line leaves no session behind: nothing is leased to it', async () => {
  const { store, hub, connect } = setup();
  const node = connect('n1');
  node.emit('cancelled'); // gone before its register ran
  await hub.settled();
  assert.deepEqual(hub.connectedNodeIds(), []);
  assert.equal(store.leasedTo('n1').length, 0);
  assert.equal(store.listNodes().find((n) => n.id === 'n1')?.status, 'offline');
  hub.stop();
});

test('a node heard from while its line waits on a slow store call is not marked down when the call returns', async () => {
  let release!: () => void;
  const slow = new Promise<void>((r) => (release = r));
  const { store, hub, connect } = setup({ nodeTimeoutMs: 30 }, (real) => ({
    relaxExclusions: () => real.relaxExclusions(),
    worthCopying: (id, now) => real.worthCopying(id, now),
    // The failure report's store call hangs (a database failing over) until released.
    recordFailure: async (...args) => {
      await slow;
      return real.recordFailure(...args);
    },
  }));
  const node = connect('n1');
  await hub.settled();
  const [a] = store.leasedTo('n1');
  node.say({ case: 'failed', value: { jobId: a!.id, error: 'boom', outOfMemory: false, logTail: '' } });
  // The node keeps heartbeating while its line waits; a tick past the timeout queues a mark-down behind the call.
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 15));
    node.say({ case: 'heartbeat', value: { runningJobIds: [] } });
  }
  const tick = hub.tick();
  release();
  await tick;
  await hub.settled();
  assert.deepEqual(hub.connectedNodeIds(), ['n1'], 'still connected');
  assert.equal(node.ended, false);
  assert.ok(store.leasedTo('n1').length > 0, 'its work stays with it');
  hub.stop();
});

test('jobs ended where this hub did not hear of it (another replica cancelled their sweep) are cancelled on the node at its next heartbeat; its own keep running', async () => {
  const { store, hub, connect } = setup();
  const node = connect('n1');
  await hub.settled();
  const [a, b] = store.leasedTo('n1');
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id, b!.id] } });
  await hub.settled();
  assert.equal(cancels(node).length, 0, 'a node running only its own jobs is told nothing');
  // Straight into the store, as another replica's cancel arrives: this hub's cancelJobs is never called.
  store.cancelSweep('sw');
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id, b!.id] } });
  await hub.settled();
  assert.deepEqual(cancels(node).map((c) => c.jobId).sort(), [a!.id, b!.id].sort());
  hub.stop();
});

test('the periodic fill passes a node at capacity by (no count of what it holds) until a heartbeat shows it has room', async () => {
  const { store, hub, connect } = setup();
  const node = connect('n1');
  await hub.settled();
  const [a, b] = store.leasedTo('n1');
  let counted = 0;
  const count = store.heldCount.bind(store);
  store.heldCount = (nodeId) => {
    counted++;
    return count(nodeId);
  };
  await hub.tick();
  await hub.tick();
  assert.equal(counted, 0, 'full after its last fill: passed by');
  // A job ended without this hub hearing (another replica, say): the node's heartbeat names one job.
  store.requeue([b!.id], 'elsewhere');
  node.say({ case: 'heartbeat', value: { runningJobIds: [a!.id] } });
  await hub.settled();
  const sent = node.cases().length;
  await hub.tick();
  await hub.settled();
  assert.equal(counted, 1, 'counted again once it had room');
  assert.deepEqual(node.cases().slice(sent), ['assign'], 'and refilled');
  assert.equal(store.leasedTo('n1').length, 2);
  hub.stop();
});

test('the tick settles a sweep left open with every job ended (a replica died between the last commit and the settle); a failure there fails no tick', async () => {
  const { store, hub } = setup({ settleIdleEveryMs: 0 });
  for (const j of store.db.prepare(`SELECT id FROM jobs WHERE sweep_id = 'sw'`).all() as { id: string }[]) {
    store.db.prepare(`UPDATE jobs SET state = 'done', finished_at = 1 WHERE id = ?`).run(j.id);
  }
  store.db.prepare(`UPDATE sweeps SET status = 'running' WHERE id = 'sw'`).run();
  const real = store.settleIdleSweeps.bind(store);
  store.settleIdleSweeps = () => {
    throw new Error('settle failed');
  };
  await hub.tick();
  assert.equal(store.getSweep('sw')!.status, 'running');
  assert.equal(hub.health.check(), 'ok', 'the tick itself went on');
  store.settleIdleSweeps = real;
  await hub.tick();
  assert.equal(store.getSweep('sw')!.status, 'done');
  hub.stop();
});

test('the tick cancels a sweep whose parts stopped short (its coordinator died while storing it), counting the jobs it has', async () => {
  const { store, hub } = setup({ settleIdleEveryMs: 0 });
  const spec = parseSpec({ prompts: ['a'], seeds: { count: 3_000 } });
  store.beginSweepInParts({ name: 'big', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, 3_000, expandSweep(spec, 3_000).map((j) => ({ ...j, minVramMb: 0 }))[Symbol.iterator](), 2_048, 'sw-short', memoJson());
  assert.equal(store.getSweep('sw-short')!.status, 'queued');
  await hub.tick();
  assert.equal(store.getSweep('sw-short')!.status, 'cancelled');
  assert.equal(store.getSweep('sw-short')!.total, 2_048);
  hub.stop();
});

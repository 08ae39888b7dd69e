/** The node hub over an in-memory Store with stand-in Connect streams: sessions and messages, no gRPC server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setImmediate as turn } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ConnectRequestSchema, type ConnectResponse } from '@nightshift/proto';
import { createLogger } from '@nightshift/common';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store, type Committed, type JobRow } from './store.js';
import { ownKeys } from './store/completion.js';
import { Scheduler } from './scheduler.js';
import { Placement } from './placement.js';
import { Live, type LiveEvent } from './live.js';
import { MAX_SLOTS, NodeHub, type HubDeps, type HubOptions, type NodeStream } from './node-hub.js';
import { NodeTokens } from './node-tokens.js';
import { MAX_PREVIEW_BYTES } from './previews.js';
import Database from 'better-sqlite3';

/** A Connect stream that records what the hub writes, and whether a transaction was open then. */
class FakeStream extends EventEmitter implements NodeStream {
  readonly metadata = new grpc.Metadata();
  readonly sent: { msg: ConnectResponse; inTransaction: boolean }[] = [];
  ended = false;
  constructor(private readonly store: Store) {
    super();
  }
  getPeer(): string {
    return 'test-peer';
  }
  write(msg: ConnectResponse): boolean {
    this.sent.push({ msg, inTransaction: this.store.db.inTransaction });
    return true;
  }
  end(): void {
    this.ended = true;
  }
  /** Sends one node message; the hub handles it on the next turn of the event loop. */
  say(msg: MessageInitShape<typeof ConnectRequestSchema>['msg']): void {
    this.emit('data', create(ConnectRequestSchema, { msg }));
  }
  cases(): string[] {
    return this.sent.map((s) => s.msg.msg.case ?? '');
  }
}

const OPTS: HubOptions = { leaseMs: 30_000, heartbeatMs: 1_000, nodeTimeoutMs: 60_000, prefetchPerSlot: 2, stragglerMinMs: Number.MAX_SAFE_INTEGER };

/** Storage as the hub sees it: which objects exist (a real HEAD is async, so this one is too). */
class FakeStorage {
  readonly objects = new Set<string>();
  heads = 0;
  async exists(key: string): Promise<boolean> {
    this.heads++;
    await Promise.resolve();
    return this.objects.has(key);
  }
  /** What a node uploads for a job before reporting it. */
  upload(job: JobRow): void {
    const own = ownKeys(job);
    for (const key of [own.imageKey, own.thumbKey]) if (key) this.objects.add(key);
  }
}

/** Turns of the event loop until `cond` holds (a reported result waits for its storage check, a retry for its backoff). */
async function until(cond: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
  assert.ok(cond(), 'condition not reached');
}

function setup(opts: Partial<HubOptions> = {}, placementOf?: (p: Placement) => HubDeps['placement'], db = openDb(':memory:')) {
  const store = new Store(db, { maxAttempts: 3, blocklistAfter: 3 });
  const storage = new FakeStorage();
  const live = new Live();
  const heard: Committed[] = [];
  store.onCommit((c) => heard.push(c));
  const progress: LiveEvent[] = [];
  live.subscribe((e) => progress.push(e));
  const placement: Placement = new Placement(store, () => hub.onlineCaps());
  const hub: NodeHub = new NodeHub(
    { store, scheduler: new Scheduler(store.db), placement: placementOf ? placementOf(placement) : placement, live, log: createLogger('hub-test', 'silent'), storage },
    { ...OPTS, storageAttempts: 1, ...opts },
  );
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 4 } });
  if (!store.getSweep('sw')) store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  heard.length = 0;
  const connect = (nodeId: string, o: { slots?: number; token?: string; backends?: string[] } = {}) => {
    const stream = new FakeStream(store);
    if (o.token) stream.metadata.set('authorization', `Bearer ${o.token}`);
    hub.handle(stream);
    stream.say({ case: 'register', value: { nodeId, name: nodeId, capabilities: { backends: o.backends ?? ['procedural'], models: [], vramMb: 24_000n, slots: o.slots ?? 1 } } });
    return stream;
  };
  return { store, hub, heard, progress, connect, storage };
}

/** A node's report that `job` is done, with the job's own keys unless told otherwise. */
const done = (job: JobRow, keys: Partial<{ imageKey: string; thumbKey: string }> = {}) =>
  ({ case: 'completed', value: { jobId: job.id, renderKey: job.render_key, ...ownKeys(job), renderMs: 5, ...keys } }) as const;

const cancels = (stream: FakeStream) => stream.sent.flatMap((s) => (s.msg.msg.case === 'cancel' ? [s.msg.msg.value] : []));

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

/** What a refused report must leave alone: job states, result audits, the outbox. */
const snapshot = (store: Store) => ({
  jobs: store.db.prepare('SELECT id, state, node_id, image_key FROM jobs ORDER BY id').all(),
  results: store.db.prepare('SELECT COUNT(*) AS n FROM results').get(),
  outbox: store.db.prepare('SELECT COUNT(*) AS n FROM outbox').get(),
});

test("nodes are not trusted: a node cannot complete a queued job or another node's job, even with its stored image", async () => {
  const { store, hub, heard, connect, storage } = setup();
  const holder = connect('n1');
  const rogue = connect('rogue', { backends: [] }); // leases nothing itself
  await turn();
  const [mine] = store.leasedTo('n1');
  const [queued] = store.jobs('sw', ['queued']);
  assert.ok(mine && queued);
  for (const job of [mine, queued]) storage.upload(job);
  const before = snapshot(store);
  heard.length = 0;
  rogue.say(done(mine));
  rogue.say(done(queued));
  await until(() => cancels(rogue).length === 2);
  await turn();
  assert.deepEqual(snapshot(store), before, 'nothing recorded');
  assert.equal(heard.length, 0, 'nothing committed that anyone hears of');
  assert.equal(storage.heads, 0, 'refused before any storage lookup');
  assert.deepEqual(cancels(rogue).map((c) => c.jobId), [mine.id, queued.id]);
  assert.match(cancels(rogue)[0]!.reason, /result refused: job .* is not leased to node rogue/);
  assert.deepEqual(cancels(holder), [], 'the holder carries on');
  hub.stop();
});

test("a holder's report with keys other than the job's own is refused", async () => {
  const { store, hub, connect, storage } = setup();
  const node = connect('n1');
  await turn();
  const [a, b] = store.leasedTo('n1');
  storage.upload(a!);
  storage.upload(b!);
  const before = snapshot(store);
  node.say(done(a!, { imageKey: ownKeys(b!).imageKey }));
  node.say(done(b!, { thumbKey: 'thumbs/elsewhere.webp' }));
  await until(() => cancels(node).length === 2);
  assert.deepEqual(snapshot(store), before);
  assert.match(cancels(node)[0]!.reason, /not the job's own/);
  hub.stop();
});

test("a report whose image is not in storage is refused after the lookup; the job keeps its lease", async () => {
  const { store, hub, connect, storage } = setup();
  const node = connect('n1');
  await turn();
  const [a] = store.leasedTo('n1');
  const before = snapshot(store);
  node.say(done(a!));
  await until(() => cancels(node).length === 1);
  assert.equal(storage.heads, 2);
  assert.deepEqual(snapshot(store), before);
  assert.equal(store.getJob(a!.id)!.state, 'leased');
  assert.match(cancels(node)[0]!.reason, /is not in storage/);
  // Uploaded after all: the same report now counts.
  storage.upload(a!);
  node.say(done(a!));
  await until(() => store.getJob(a!.id)!.state === 'done');
  hub.stop();
});

test('a late report from the node whose lease moved on is still accepted (first result wins); the new holder is told to stop', async () => {
  const { store, hub, connect, storage } = setup({ leaseMs: 1 });
  const slow = connect('n1');
  await turn();
  const [a] = store.leasedTo('n1');
  slow.emit('cancelled'); // n1's link broke; its lease runs out and n2 gets the job
  await new Promise((r) => setTimeout(r, 5));
  hub.tick();
  assert.equal(store.getJob(a!.id)!.state, 'queued');
  const other = connect('n2');
  await turn();
  assert.equal(store.getJob(a!.id)!.node_id, 'n2');
  const back = connect('n1');
  storage.upload(a!);
  back.say(done(a!));
  await until(() => store.getJob(a!.id)!.state === 'done');
  assert.equal(store.getJob(a!.id)!.node_id, 'n1');
  assert.ok(cancels(other).some((c) => c.jobId === a!.id && /finished this job first/.test(c.reason)));
  hub.stop();
});

test(`slots are capped at ${MAX_SLOTS}: a node claiming 4,294,967,295 cannot lease the whole queue`, async () => {
  const { store, hub, connect } = setup();
  const spec = parseSpec({ prompts: ['many'], seeds: { count: 300 } });
  store.createSweep({ name: 'big', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 1_000).map((j) => ({ ...j, minVramMb: 0 })), 'big');
  const greedy = connect('greedy', { slots: 4_294_967_295 });
  await turn();
  const assigned = greedy.cases().filter((c) => c === 'assign').length;
  assert.equal(assigned, MAX_SLOTS * OPTS.prefetchPerSlot);
  assert.equal(store.leasedTo('greedy').length, assigned);
  hub.stop();
});

test('a node id belongs to the token that first enrolled it; another token claiming it is refused, also after a restart', async () => {
  const db = openDb(':memory:');
  const tokens = () => new NodeTokens({ tokens: 'tok-a,tok-b' });
  const first = setup({ tokens: tokens() }, undefined, db);
  const real = first.connect('n1', { token: 'tok-a' });
  await turn();
  assert.equal(real.cases()[0], 'registered');
  const nodesBefore = first.store.listNodes();
  const leasedBefore = first.store.leasedTo('n1').map((j) => j.id);
  const errors: unknown[] = [];
  const thief = new FakeStream(first.store);
  thief.metadata.set('authorization', 'Bearer tok-b');
  thief.on('error', (e) => errors.push(e));
  first.hub.handle(thief);
  thief.say({ case: 'register', value: { nodeId: 'n1', name: 'n1', capabilities: { backends: ['procedural'], vramMb: 24_000n, slots: 1 } } });
  await turn();
  assert.deepEqual(errors, [{ code: grpc.status.PERMISSION_DENIED, details: 'node id n1 is enrolled with another token; choose another NIGHTSHIFT_NODE_ID' }]);
  assert.deepEqual(thief.cases(), [], 'the thief is told nothing else');
  assert.equal(real.ended, false, "the real node's session is untouched");
  assert.deepEqual(first.hub.connectedNodeIds(), ['n1']);
  assert.deepEqual(first.store.listNodes(), nodesBefore);
  assert.deepEqual(first.store.leasedTo('n1').map((j) => j.id), leasedBefore);
  // Its own id with its own token is fine.
  const own = first.connect('n2', { token: 'tok-b' });
  await turn();
  assert.equal(own.cases()[0], 'registered');
  first.hub.stop();
  // The binding is in SQLite: a restarted coordinator still refuses.
  const again = setup({ tokens: tokens() }, undefined, db);
  const thief2 = again.connect('n1', { token: 'tok-b' });
  const errors2: unknown[] = [];
  thief2.on('error', (e) => errors2.push(e));
  await turn();
  assert.equal(errors2.length, 1);
  again.hub.stop();
  // Once tok-a is revoked, the id may be enrolled anew.
  const revoked = setup({ tokens: new NodeTokens({ tokens: 'tok-b' }) }, undefined, db);
  const heir = revoked.connect('n1', { token: 'tok-b' });
  await turn();
  assert.equal(heir.cases()[0], 'registered');
  revoked.hub.stop();
});

test('progress: an oversized preview is ignored, and only a holder speaks for its job', async () => {
  const offered: string[] = [];
  const store = new Store(openDb(':memory:'), { maxAttempts: 3, blocklistAfter: 3 });
  const live = new Live();
  const events: LiveEvent[] = [];
  live.subscribe((e) => events.push(e));
  const spec = parseSpec({ prompts: ['p'], seeds: { count: 4 } });
  store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  const placement: Placement = new Placement(store, () => hub.onlineCaps());
  const hub: NodeHub = new NodeHub(
    { store, scheduler: new Scheduler(store.db), placement, live, log: createLogger('hub-test', 'silent'), storage: new FakeStorage(), previews: { offer: (id) => (offered.push(id), true) } },
    OPTS,
  );
  const node = new FakeStream(store);
  hub.handle(node);
  node.say({ case: 'register', value: { nodeId: 'n1', capabilities: { backends: ['procedural'], vramMb: 1n, slots: 1 } } });
  await turn();
  const [a] = store.leasedTo('n1');
  const [queued] = store.jobs('sw', ['queued']);
  node.say({ case: 'progress', value: { jobId: a!.id, step: 1, total: 2, previewWebp: new Uint8Array(MAX_PREVIEW_BYTES + 1) } });
  node.say({ case: 'progress', value: { jobId: a!.id, step: 2, total: 2, previewWebp: new Uint8Array(MAX_PREVIEW_BYTES) } });
  node.say({ case: 'progress', value: { jobId: queued!.id, step: 1, total: 2, previewWebp: new Uint8Array(10) } });
  await turn();
  const progress = events.filter((e) => e.type === 'progress');
  assert.deepEqual(progress.map((e) => [e.jobId, e.step, 'preview' in e]), [[a!.id, 1, false], [a!.id, 2, true]]);
  assert.deepEqual(offered, [a!.id], 'only the preview within the bound is stored');
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

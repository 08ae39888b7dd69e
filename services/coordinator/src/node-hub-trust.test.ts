/** The node hub with nodes that are not trusted: results they do not hold, keys not their job's, capped slots, node ids bound to tokens, progress for others' jobs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '@nightshift/common';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { Store } from './store.js';
import { ownKeys } from './store/completion.js';
import { Placement } from './placement.js';
import { Live, type LiveEvent } from './live.js';
import { MAX_HEARTBEAT_JOBS, MAX_SLOTS, MAX_VRAM_MB, NodeHub } from './node-hub.js';
import { NodeTokens } from './node-tokens.js';
import { MAX_PREVIEW_BYTES } from './previews.js';
import { FakeStorage, FakeStream, OPTS, cancels, done, setup, until } from './node-hub-test-helpers.js';

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
  await hub.settled();
  const [mine] = store.leasedTo('n1');
  const [queued] = store.jobs('sw', ['queued']);
  assert.ok(mine && queued);
  for (const job of [mine, queued]) storage.upload(job);
  const before = snapshot(store);
  heard.length = 0;
  rogue.say(done(mine));
  rogue.say(done(queued));
  await until(() => cancels(rogue).length === 2);
  await hub.settled();
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
  await hub.settled();
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
  await hub.settled();
  const [a] = store.leasedTo('n1');
  const before = snapshot(store);
  node.say(done(a!));
  await until(() => cancels(node).length === 1);
  assert.equal(storage.heads, 1, 'the image looked up');
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
  await hub.settled();
  const [a] = store.leasedTo('n1');
  slow.emit('cancelled'); // n1's link broke; its lease runs out and n2 gets the job
  await new Promise((r) => setTimeout(r, 5));
  await hub.tick();
  assert.equal(store.getJob(a!.id)!.state, 'queued');
  const other = connect('n2');
  await hub.settled();
  assert.equal(store.getJob(a!.id)!.node_id, 'n2');
  const back = connect('n1');
  storage.upload(a!);
  back.say(done(a!));
  await until(() => store.getJob(a!.id)!.state === 'done');
  await hub.settled(); // the other holder is told once the result is committed
  assert.equal(store.getJob(a!.id)!.node_id, 'n1');
  assert.ok(cancels(other).some((c) => c.jobId === a!.id && /finished this job first/.test(c.reason)));
  hub.stop();
});

test('a report\'s model name and render time are bounded as stored: no control characters, 128 characters, a day', async () => {
  const { store, hub, connect, storage } = setup();
  const node = connect('n1');
  await hub.settled();
  const [a] = store.leasedTo('n1');
  storage.upload(a!);
  node.say(done(a!, { model: `sd\u0000-15\n${'x'.repeat(500)}`, renderMs: 4_000_000_000 }));
  await until(() => store.getJob(a!.id)?.state === 'done');
  const row = store.getJob(a!.id)!;
  assert.equal(row.result_model, `sd-15${'x'.repeat(123)}`);
  assert.equal(row.render_ms, 24 * 3_600_000);
  hub.stop();
});

test(`slots are capped at ${MAX_SLOTS}: a node claiming 4,294,967,295 cannot lease the whole queue`, async () => {
  const { store, hub, connect } = setup();
  const spec = parseSpec({ prompts: ['many'], seeds: { count: 300 } });
  store.createSweep({ name: 'big', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 1_000).map((j) => ({ ...j, minVramMb: 0 })), 'big');
  const greedy = connect('greedy', { slots: 4_294_967_295 });
  await hub.settled();
  const assigned = greedy.cases().filter((c) => c === 'assign').length;
  assert.equal(assigned, MAX_SLOTS * OPTS.prefetchPerSlot);
  assert.equal(store.leasedTo('greedy').length, assigned);
  hub.stop();
});

test(`VRAM is capped at ${MAX_VRAM_MB} MB: a node claiming 2^64 - 1 is stored and scheduled with the cap (PostgreSQL's pick binds it as a 32-bit integer)`, async () => {
  const { store, hub, connect } = setup();
  const spec = parseSpec({ prompts: ['one'], seeds: { count: 1 } });
  store.createSweep({ name: 'one', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 1_000).map((j) => ({ ...j, minVramMb: 0 })), 'one');
  connect('huge', { vramMb: 2n ** 64n - 1n });
  await hub.settled();
  assert.equal((JSON.parse(store.listNodes().find((n) => n.id === 'huge')!.capabilities_json) as { vramMb: number }).vramMb, MAX_VRAM_MB);
  assert.ok(store.leasedTo('huge').length > 0, 'it leases');
  hub.stop();
});

test('a node id belongs to the token that first enrolled it; another token claiming it is refused, also after a restart', async () => {
  const db = openDb(':memory:');
  const tokens = () => new NodeTokens({ tokens: 'tok-a,tok-b' });
  const first = setup({ tokens: tokens() }, undefined, db);
  const real = first.connect('n1', { token: 'tok-a' });
  await first.hub.settled();
  assert.equal(real.cases()[0], 'registered');
  const nodesBefore = first.store.listNodes();
  const leasedBefore = first.store.leasedTo('n1').map((j) => j.id);
  const errors: unknown[] = [];
  const thief = new FakeStream(first.store);
  thief.metadata.set('authorization', 'Bearer tok-b');
  thief.on('error', (e) => errors.push(e));
  first.hub.handle(thief);
  thief.say({ case: 'register', value: { nodeId: 'n1', name: 'n1', capabilities: { backends: ['procedural'], vramMb: 24_000n, slots: 1 } } });
  await first.hub.settled();
  assert.deepEqual(errors, [{ code: grpc.status.PERMISSION_DENIED, details: 'node id n1 is enrolled with another token; choose another NIGHTSHIFT_NODE_ID' }]);
  assert.deepEqual(thief.cases(), [], 'the thief is told nothing else');
  assert.equal(real.ended, false, "the real node's session is untouched");
  assert.deepEqual(first.hub.connectedNodeIds(), ['n1']);
  assert.deepEqual(first.store.listNodes(), nodesBefore);
  assert.deepEqual(first.store.leasedTo('n1').map((j) => j.id), leasedBefore);
  // Its own id with its own token is fine.
  const own = first.connect('n2', { token: 'tok-b' });
  await first.hub.settled();
  assert.equal(own.cases()[0], 'registered');
  first.hub.stop();
  // The binding is in SQLite: a restarted coordinator still refuses.
  const again = setup({ tokens: tokens() }, undefined, db);
  const thief2 = again.connect('n1', { token: 'tok-b' });
  const errors2: unknown[] = [];
  thief2.on('error', (e) => errors2.push(e));
  await again.hub.settled();
  assert.equal(errors2.length, 1);
  again.hub.stop();
  // Once tok-a is revoked, the id may be enrolled anew.
  const revoked = setup({ tokens: new NodeTokens({ tokens: 'tok-b' }) }, undefined, db);
  const heir = revoked.connect('n1', { token: 'tok-b' });
  await revoked.hub.settled();
  assert.equal(heir.cases()[0], 'registered');
  revoked.hub.stop();
});

test('progress: an oversized preview is ignored, and only a holder speaks for its job', async () => {
  const offered: string[] = [];
  const store = new EngineStore(openDb(':memory:'), { maxAttempts: 3, blocklistAfter: 3 });
  const engine = new SqliteEngine(store);
  const live = new Live();
  const events: LiveEvent[] = [];
  live.subscribe((e) => events.push(e));
  const spec = parseSpec({ prompts: ['p'], seeds: { count: 4 } });
  store.createSweep({ name: 's', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), 'sw');
  const placement: Placement = new Placement(engine, () => hub.onlineCaps());
  const hub: NodeHub = new NodeHub(
    { engine, placement, live, log: createLogger('hub-test', 'silent'), storage: new FakeStorage(), previews: { offer: (id) => (offered.push(id), true) } },
    OPTS,
  );
  const node = new FakeStream(store);
  hub.handle(node);
  node.say({ case: 'register', value: { nodeId: 'n1', capabilities: { backends: ['procedural'], vramMb: 1n, slots: 1 } } });
  await hub.settled();
  const [a] = store.leasedTo('n1');
  const [queued] = store.jobs('sw', ['queued']);
  node.say({ case: 'progress', value: { jobId: a!.id, step: 1, total: 2, previewWebp: new Uint8Array(MAX_PREVIEW_BYTES + 1) } });
  node.say({ case: 'progress', value: { jobId: a!.id, step: 2, total: 2, previewWebp: new Uint8Array(MAX_PREVIEW_BYTES) } });
  node.say({ case: 'progress', value: { jobId: queued!.id, step: 1, total: 2, previewWebp: new Uint8Array(10) } });
  await hub.settled();
  const progress = events.filter((e) => e.type === 'progress');
  assert.deepEqual(progress.map((e) => [e.jobId, e.step, 'preview' in e]), [[a!.id, 1, false], [a!.id, 2, true]]);
  assert.deepEqual(offered, [a!.id], 'only the preview within the bound is stored');
  hub.stop();
});

test('a heartbeat naming made-up jobs, again and again and beyond any capacity, gets one cancel per distinct id up to the bound', async () => {
  const { hub, connect } = setup();
  const node = connect('n1');
  await hub.settled();
  const forged = Array.from({ length: MAX_HEARTBEAT_JOBS + 500 }, (_, i) => `forged-${i}`);
  node.say({ case: 'heartbeat', value: { runningJobIds: ['forged-0', 'forged-0', ...forged] } });
  await hub.settled();
  const told = cancels(node).map((c) => c.jobId);
  assert.equal(told.length, MAX_HEARTBEAT_JOBS, 'cut at the bound');
  assert.equal(new Set(told).size, told.length, 'each id once');
  assert.equal(told[0], 'forged-0');
  hub.stop();
});

/** Fair share between people, then between their sweeps (scheduler rule 3), against an in-memory database. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { estimateVramMb, expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store, type JobRow, type NewJob } from './store.js';
import { Scheduler, type NodeCaps } from './scheduler.js';
import { ownKeys } from './store/completion.js';
import { keyHash } from './callers.js';

const GPU: NodeCaps = { backends: ['procedural'], models: ['procedural-v1'], vramMb: 24_000 };

function setup() {
  const now = { t: 1_000_000 };
  const store = new Store(openDb(':memory:'), { now: () => now.t });
  return { store, scheduler: new Scheduler(store.db), now };
}

function addUser(store: Store, name: string, weight = 1) {
  assert.ok(store.addKey({ name, admin: false, weight, quotaImages: null }, keyHash(`secret-${name}`)));
}

function addSweep(store: Store, owner: string, id: string, images = 200) {
  const parsed = parseSpec({ prompts: [id], seeds: { count: images } });
  const jobs: NewJob[] = expandSweep(parsed, 100_000).map((j) => ({ ...j, minVramMb: estimateVramMb(Number(j.params.width), Number(j.params.height)) }));
  return store.createSweep({ name: id, spec: parsed, priority: 0, backend: parsed.backend, model: 'procedural-v1', owner }, jobs, id);
}

/** Fills `slots` leases on one node the way the hub does (pick, lease, repeat). */
function fill(store: Store, scheduler: Scheduler, slots: number, now: number): JobRow[] {
  const out: JobRow[] = [];
  for (let i = 0; i < slots; i++) {
    const id = scheduler.pick('n1', GPU, now);
    if (!id) break;
    out.push(store.lease([id], 'n1', 60_000)[0]!);
  }
  return out;
}

const ownerOf = (store: Store, job: JobRow) => store.getSweep(job.sweep_id)!.owner;
const runningOf = (store: Store, user: string) => store.getUser(user)!.running;

test('two users of equal weight, one with ten sweeps and one with one, each hold half the farm', () => {
  const { store, scheduler, now } = setup();
  addUser(store, 'alice');
  addUser(store, 'bob');
  for (let i = 0; i < 10; i++) addSweep(store, 'alice', `a${i}`);
  now.t++;
  addSweep(store, 'bob', 'b0');
  const leased = fill(store, scheduler, 20, now.t);
  assert.equal(leased.filter((j) => ownerOf(store, j) === 'alice').length, 10);
  assert.equal(leased.filter((j) => ownerOf(store, j) === 'bob').length, 10);
  // Within alice's half, her ten sweeps share: one job each.
  assert.deepEqual(new Set(leased.filter((j) => ownerOf(store, j) === 'alice').map((j) => j.sweep_id)).size, 10);
});

test('in a steady state (a slot frees, the next pick fills it) finishes follow the weights: 1 : 3', () => {
  const { store, scheduler, now } = setup();
  addUser(store, 'alice', 1);
  addUser(store, 'bob', 3);
  for (let i = 0; i < 10; i++) addSweep(store, 'alice', `a${i}`);
  addSweep(store, 'bob', 'b0', 2_000);
  const held = fill(store, scheduler, 8, now.t);
  assert.equal(held.filter((j) => ownerOf(store, j) === 'alice').length, 2);
  assert.equal(held.filter((j) => ownerOf(store, j) === 'bob').length, 6);
  const done = { alice: 0, bob: 0 } as Record<string, number>;
  // The oldest lease finishes first, whoever holds it: a fair node, equal render times.
  for (let i = 0; i < 400; i++) {
    now.t++;
    const job = held.shift()!;
    store.completeJob(job.id, 'n1', { ...ownKeys(job), renderMs: 1, skipped: false });
    done[ownerOf(store, job)]!++;
    held.push(...fill(store, scheduler, 1, now.t));
    assert.equal(held.length, 8, 'the node stays full while both have work');
  }
  assert.equal(done.alice! + done.bob!, 400);
  assert.equal(done.bob! / done.alice!, 3, `finished: ${JSON.stringify(done)}`);
});

test("the users' running counts are counters kept by the store's writes (lease, finish, requeue, cancel), not scans", () => {
  const { store, scheduler, now } = setup();
  addUser(store, 'alice');
  addUser(store, 'bob');
  addSweep(store, 'alice', 'a0', 10);
  addSweep(store, 'bob', 'b0', 10);
  const held = fill(store, scheduler, 6, now.t);
  assert.deepEqual([runningOf(store, 'alice'), runningOf(store, 'bob')], [3, 3]);
  const mine = held.filter((j) => ownerOf(store, j) === 'alice');
  store.completeJob(mine[0]!.id, 'n1', { ...ownKeys(mine[0]!), renderMs: 1, skipped: false });
  store.requeue([mine[1]!.id], 'test');
  assert.equal(runningOf(store, 'alice'), 1);
  store.cancelSweep('b0');
  assert.equal(runningOf(store, 'bob'), 0);
  assert.equal(runningOf(store, 'local'), 0);
});

test('a user without work leaves the whole farm to the others; a user who submits gets their share back at the next picks', () => {
  const { store, scheduler, now } = setup();
  addUser(store, 'alice');
  addUser(store, 'bob');
  addSweep(store, 'alice', 'a0');
  const first = fill(store, scheduler, 4, now.t);
  assert.ok(first.every((j) => ownerOf(store, j) === 'alice'), 'alone, alice takes every slot');
  addSweep(store, 'bob', 'b0');
  const next = fill(store, scheduler, 4, now.t);
  assert.ok(next.every((j) => ownerOf(store, j) === 'bob'), 'bob is below his share until he holds as many as alice');
  const last = fill(store, scheduler, 2, now.t);
  assert.deepEqual(last.map((j) => ownerOf(store, j)).sort(), ['alice', 'bob']);
});

test("an admin's priority still comes first: a higher-priority sweep of theirs goes ahead of any user share", () => {
  const { store, scheduler, now } = setup();
  addUser(store, 'alice');
  addSweep(store, 'alice', 'a0');
  addSweep(store, 'local', 'l0'); // the farm token's user: an admin
  assert.ok(store.setPriority('l0', 5));
  const leased = fill(store, scheduler, 6, now.t);
  assert.ok(leased.every((j) => j.sweep_id === 'l0'));
});

test("a user's priority above 0 orders only their own sweeps: it cannot take the others' share", () => {
  const { store, scheduler, now } = setup();
  addUser(store, 'alice');
  addUser(store, 'bob');
  addSweep(store, 'alice', 'a0');
  addSweep(store, 'alice', 'a1');
  assert.ok(store.setPriority('a1', 100));
  addSweep(store, 'bob', 'b0');
  const leased = fill(store, scheduler, 8, now.t);
  assert.equal(leased.filter((j) => ownerOf(store, j) === 'bob').length, 4, 'bob keeps half the farm');
  assert.deepEqual(new Set(leased.filter((j) => ownerOf(store, j) === 'alice').map((j) => j.sweep_id)), new Set(['a1']), "alice's half goes to her priority sweep first");
});

test("a user's priority below 0 yields their work to everyone's", () => {
  const { store, scheduler, now } = setup();
  addUser(store, 'alice');
  addUser(store, 'bob');
  addSweep(store, 'alice', 'a0');
  assert.ok(store.setPriority('a0', -1));
  addSweep(store, 'bob', 'b0', 6);
  const leased = fill(store, scheduler, 8, now.t);
  assert.deepEqual(leased.map((j) => ownerOf(store, j)), ['bob', 'bob', 'bob', 'bob', 'bob', 'bob', 'alice', 'alice'], "bob's six first, then alice's background work");
});

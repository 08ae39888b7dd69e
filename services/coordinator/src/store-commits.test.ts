/** The Store's after-commit hook: listeners hear of a change once, after it commits, and never of one rolled back. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { openDb } from './db.js';
import { Store, type Committed } from './store.js';
import { ownKeys } from './store/completion.js';

function setup() {
  const store = new Store(openDb(':memory:'), { now: () => 1_000_000, maxAttempts: 3, blocklistAfter: 2 });
  const heard: Committed[] = [];
  store.onCommit((c) => heard.push(c));
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 2 } });
  const add = (id: string) =>
    store.createSweep({ name: id, spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), id);
  return { store, heard, add };
}

test('a write outside a transaction is heard at once: outbox rows and what changed', () => {
  const { store, heard, add } = setup();
  add('sw-1');
  assert.deepEqual(heard, [{ outbox: true, webhooks: false, events: [{ type: 'sweep', sweepId: 'sw-1' }] }]);
  store.setPriority('sw-1', 5);
  assert.deepEqual(heard[1], { outbox: false, webhooks: false, events: [{ type: 'sweep', sweepId: 'sw-1' }] }, 'no outbox row: the publisher is not woken');
  store.touchNode('nobody');
  store.renewLeases('n1', [], 1_000);
  assert.equal(heard.length, 2, 'writes that change nothing anyone watches are not heard');
});

test('a batch in one transaction is heard once, after its commit: jobs and nodes in order, each sweep once', () => {
  const { store, heard, add } = setup();
  add('sw-1');
  heard.length = 0;
  const [a, b] = store.jobs('sw-1');
  let duringBatch = -1;
  store.transaction(() => {
    store.upsertNode('n1', 'n1', {});
    store.lease([a!.id, b!.id], 'n1', 30_000);
    store.completeJob(a!.id, 'n1', { ...ownKeys(a!), renderMs: 1, skipped: false });
    store.failJob(b!.id, { id: 'n1', vramMb: 1 }, { error: 'boom', logTail: '', outOfMemory: false });
    duringBatch = heard.length;
  });
  assert.equal(duringBatch, 0, 'nothing is heard before the commit');
  assert.deepEqual(heard, [
    {
      outbox: true,
      webhooks: false,
      events: [
        { type: 'node', nodeId: 'n1', status: 'online' },
        { type: 'job', sweepId: 'sw-1', jobId: a!.id, state: 'done' },
        { type: 'job', sweepId: 'sw-1', jobId: b!.id, state: 'queued' },
        { type: 'sweep', sweepId: 'sw-1' },
      ],
    },
  ]);
});

test('a rolled-back transaction is never heard; a rolled-back savepoint drops only its own changes', () => {
  const { store, heard, add } = setup();
  assert.throws(() =>
    store.transaction(() => {
      add('sw-gone');
      throw new Error('abort');
    }),
  );
  assert.equal(store.getSweep('sw-gone'), undefined);
  assert.deepEqual(heard, []);
  store.transaction(() => {
    add('sw-kept');
    assert.throws(() =>
      store.transaction(() => {
        store.setPriority('sw-kept', 9);
        throw new Error('inner abort');
      }),
    );
  });
  assert.equal(store.getSweep('sw-kept')!.priority, 0);
  assert.deepEqual(heard, [{ outbox: true, webhooks: false, events: [{ type: 'sweep', sweepId: 'sw-kept' }] }]);
});

test('afterCommit: runs once the outermost transaction commits, at once outside one, never after a rollback', () => {
  const { store, add } = setup();
  const ran: string[] = [];
  store.afterCommit(() => ran.push('outside'));
  assert.deepEqual(ran, ['outside']);
  store.transaction(() => {
    store.afterCommit(() => ran.push('batch'));
    add('sw-1');
    assert.deepEqual(ran, ['outside']);
  });
  assert.deepEqual(ran, ['outside', 'batch']);
  assert.throws(() =>
    store.transaction(() => {
      store.afterCommit(() => ran.push('undone'));
      throw new Error('abort');
    }),
  );
  assert.deepEqual(ran, ['outside', 'batch']);
});

test('a throwing listener does not stop the others, and the commit stands', () => {
  const { store, heard, add } = setup();
  store.onCommit(() => {
    throw new Error('listener broke');
  });
  const after: number[] = [];
  store.onCommit(() => after.push(1));
  assert.throws(() => add('sw-1'), /listener broke/);
  assert.ok(store.getSweep('sw-1'));
  assert.equal(heard.length, 1);
  assert.deepEqual(after, [1]);
});

test('a node marked down: offline, its jobs requeued and announced, in one commit', () => {
  const { store, heard, add } = setup();
  add('sw-1');
  store.upsertNode('n1', 'n1', {});
  const jobs = store.jobs('sw-1');
  store.lease(jobs.map((j) => j.id), 'n1', 30_000);
  heard.length = 0;
  assert.equal(store.markNodeDown('n1', 'silent').length, 2);
  assert.equal(heard.length, 1);
  assert.equal(heard[0]!.outbox, true);
  assert.deepEqual(heard[0]!.events.map((e) => e.type), ['job', 'job', 'node', 'sweep']);
  assert.deepEqual(heard[0]!.events[2], { type: 'node', nodeId: 'n1', status: 'down' });
  assert.equal(store.listNodes()[0]!.status, 'offline');
  assert.equal(store.counts('sw-1').queued, 2);
  const down = store.db.prepare(`SELECT payload FROM outbox WHERE subject = 'nightshift.node.down'`).get() as { payload: string };
  assert.deepEqual({ ...JSON.parse(down.payload), at: undefined }, { nodeId: 'n1', why: 'silent', requeued: 2, at: undefined });
});

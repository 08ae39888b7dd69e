/** StoreBase.batchTurns: a turn's writes share one transaction, committed at the turn's end; what waits for it runs after, or never when it fails. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { tempDir } from '@nightshift/devfarm';
import { openDb } from './db.js';
import { Store, type Committed } from './store.js';

function setup() {
  const tmp = tempDir('nightshift-turns-');
  const file = join(tmp.dir, 'c.sqlite');
  const store = new Store(openDb(file), { now: () => 1_000_000, maxAttempts: 3, blocklistAfter: 2 });
  const lost: unknown[] = [];
  const failed: unknown[] = [];
  store.batchTurns(
    (err) => lost.push(err),
    (err) => failed.push(err),
  );
  const heard: Committed[] = [];
  store.onCommit((c) => heard.push(c));
  // Another connection to the file sees only what is committed.
  const reader = new Database(file, { readonly: true });
  const committedSweeps = () => (reader.prepare('SELECT id FROM sweeps ORDER BY id').all() as { id: string }[]).map((r) => r.id);
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 2 } });
  const add = (id: string) => store.createSweep({ name: id, spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), id);
  const close = () => {
    reader.close();
    store.db.close();
    tmp.cleanup();
  };
  return { store, lost, failed, heard, committedSweeps, add, close };
}

test("a turn's writes commit together at its end: invisible to others and unheard until then; afterCommit and committed() after", async () => {
  const { store, lost, heard, committedSweeps, add, close } = setup();
  try {
    const order: string[] = [];
    add('sw-1');
    store.afterCommit(() => order.push('told'));
    add('sw-2');
    const done = store.committed().then(() => order.push('committed'));
    assert.deepEqual(store.getSweep('sw-2')?.id, 'sw-2', 'this connection reads its own writes at once');
    assert.deepEqual(committedSweeps(), [], 'nothing committed within the turn');
    assert.deepEqual([heard.length, order], [0, []]);
    await done;
    assert.deepEqual(committedSweeps(), ['sw-1', 'sw-2']);
    assert.equal(heard.length, 1, 'heard once, for the whole turn');
    assert.deepEqual(heard[0]!.events, [{ type: 'sweep', sweepId: 'sw-1' }, { type: 'sweep', sweepId: 'sw-2' }]);
    assert.deepEqual(order, ['told', 'committed']);
    assert.equal(store.db.inTransaction, false);
    store.afterCommit(() => order.push('at once'));
    assert.deepEqual(order.at(-1), 'at once', 'with no turn open, afterCommit runs at once');
    await store.committed();
    assert.deepEqual(lost, []);
  } finally {
    close();
  }
});

test('a turn whose commit fails is rolled back whole: nothing of it is heard or told, committed() rejects, and the loss is reported', async () => {
  const { store, lost, heard, committedSweeps, add, close } = setup();
  try {
    add('sw-1');
    await nextTurn();
    heard.length = 0;
    add('sw-2');
    // A foreign key checked only at COMMIT: the turn's commit fails.
    store.db.pragma('defer_foreign_keys = ON');
    store.db.prepare(`INSERT INTO jobs (id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state) VALUES ('orphan', 'no-such-sweep', 0, 'rk', 'p', 1, '{}', '{}', 'procedural', 'm', 'queued')`).run();
    let told = false;
    store.afterCommit(() => (told = true));
    await assert.rejects(store.committed(), /FOREIGN KEY/);
    assert.equal(lost.length, 1);
    assert.match(String(lost[0]), /FOREIGN KEY/);
    assert.equal(told, false, 'what waited for the commit never ran');
    assert.equal(heard.length, 0, 'nobody hears of undone writes');
    assert.deepEqual(committedSweeps(), ['sw-1']);
    assert.equal(store.getSweep('sw-2'), undefined, 'rolled back for this connection too');
    assert.equal(store.db.inTransaction, false);
    // The next turn works again.
    add('sw-3');
    await store.committed();
    assert.deepEqual(committedSweeps(), ['sw-1', 'sw-3']);
  } finally {
    close();
  }
});

test('a turn SQLite rolled back itself (a statement that ended the transaction) is lost whole, not committed in part', async () => {
  const { store, lost, heard, committedSweeps, add, close } = setup();
  try {
    store.db.exec(`CREATE TEMP TRIGGER boom BEFORE INSERT ON outbox WHEN NEW.subject = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'boom'); END`);
    add('sw-1');
    let told = false;
    store.afterCommit(() => (told = true));
    assert.throws(() => store.db.prepare(`INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES ('boom', 'x', '{}', 0)`).run(), /boom/);
    add('sw-2');
    await store.committed();
    assert.equal(lost.length, 1, 'the vanished turn is reported lost');
    assert.equal(told, false, 'nothing waiting on it ran');
    assert.deepEqual(committedSweeps(), ['sw-2'], 'only the writes after it, in a turn of their own');
    assert.deepEqual(heard.flatMap((c) => c.events), [{ type: 'sweep', sweepId: 'sw-2' }]);
  } finally {
    close();
  }
});

test('unbatched, a write commits before it resolves: the open turn first, then the write on its own; batched() inside it joins turns again', async () => {
  const { store, committedSweeps, add, close } = setup();
  try {
    add('sw-1');
    assert.deepEqual(committedSweeps(), []);
    await store.unbatched(async () => {
      await Promise.resolve();
      add('sw-2');
      assert.deepEqual(committedSweeps(), ['sw-1', 'sw-2'], 'durable at once: the open turn committed first');
      assert.equal(store.db.inTransaction, false);
    });
    await store.unbatched(async () => {
      await store.batched(async () => {
        await Promise.resolve();
        add('sw-3');
      });
    });
    assert.deepEqual(committedSweeps(), ['sw-1', 'sw-2'], 'work handed on in batched() joins a turn again');
    await store.committed();
    assert.deepEqual(committedSweeps(), ['sw-1', 'sw-2', 'sw-3']);
  } finally {
    close();
  }
});

test('a listener that throws after a commit is reported; the commit stands and its waiters resolve', async () => {
  const { store, lost, failed, committedSweeps, add, close } = setup();
  try {
    store.onCommit(() => {
      throw new Error('listener broke');
    });
    add('sw-1');
    await store.committed();
    assert.deepEqual(committedSweeps(), ['sw-1']);
    assert.equal(lost.length, 0);
    assert.match(String(failed[0]), /listener broke/);
  } finally {
    close();
  }
});

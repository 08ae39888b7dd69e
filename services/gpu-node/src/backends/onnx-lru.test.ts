import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LruResources } from './onnx-lru.js';

function tracked(max: number) {
  const opened: string[] = [];
  const closed: string[] = [];
  const failing = new Set<string>();
  const lru = new LruResources<{ key: string }>(
    max,
    async (key) => {
      opened.push(key);
      if (failing.has(key)) throw new Error(`cannot open ${key}`);
      return { key };
    },
    async (v) => {
      closed.push(v.key);
    },
  );
  return { lru, opened, closed, failing };
}

test('at most N stay open: the least recently used unheld one is closed before the next opens', async () => {
  const { lru, opened, closed } = tracked(2);
  (await lru.acquire('a')).release();
  (await lru.acquire('b')).release();
  (await lru.acquire('a')).release(); // a is now the most recent
  assert.deepEqual(opened, ['a', 'b']);
  (await lru.acquire('c')).release();
  assert.deepEqual(closed, ['b']);
  assert.deepEqual(lru.keys(), ['a', 'c']);
  (await lru.acquire('b')).release();
  assert.deepEqual(closed, ['b', 'a']);
  assert.deepEqual(opened, ['a', 'b', 'c', 'b']);
});

test('one in use is never closed; the count comes back to N when it is released', async () => {
  const { lru, closed } = tracked(1);
  const a = await lru.acquire('a');
  const b = await lru.acquire('b');
  assert.deepEqual(closed, [], 'both held: both stay open');
  assert.deepEqual(lru.keys(), ['a', 'b']);
  const again = await lru.acquire('a'); // a second use of an open one shares it
  a.release();
  a.release(); // idempotent: the second holder still counts
  assert.deepEqual(closed, []);
  again.release();
  await lru.settled();
  assert.deepEqual(closed, ['a']);
  assert.deepEqual(lru.keys(), ['b']);
  b.release();
  assert.deepEqual(lru.keys(), ['b']);
  await lru.closeAll();
  assert.deepEqual(closed, ['a', 'b']);
});

test('a failed open is forgotten and tried again; it holds no room', async () => {
  const { lru, opened, failing, closed } = tracked(1);
  failing.add('x');
  await assert.rejects(lru.acquire('x'), /cannot open x/);
  assert.deepEqual(lru.keys(), []);
  failing.delete('x');
  (await lru.acquire('x')).release();
  assert.deepEqual(opened, ['x', 'x']);
  assert.deepEqual(closed, []);
  assert.throws(() => new LruResources(0, async () => 1, async () => {}), /at least one/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { FarmFill } from './farm-fill.js';

/** Resolves once every pending setImmediate chain has run (a few turns are enough here). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await turn();
};

function farm(n: number, chunk = 50) {
  const nodes = Array.from({ length: n }, (_, i) => `n${i}`);
  const chunks: string[][] = [];
  let stopped = false;
  let fail: unknown;
  const failures: unknown[] = [];
  let passes = 0;
  const fill = new FarmFill<string>(
    {
      targets: () => [...nodes],
      fill: (c) => {
        if (fail) throw fail;
        chunks.push(c);
      },
      failed: (err) => failures.push(err),
      passed: () => passes++,
      stopped: () => stopped,
    },
    chunk,
  );
  return { nodes, chunks, fill, failures, passes: () => passes, stop: () => (stopped = true), failWith: (err: unknown) => (fail = err) };
}

test('a farm no bigger than a chunk is filled at once, in the caller’s turn', () => {
  const f = farm(50);
  f.fill.request();
  assert.deepEqual(f.chunks, [f.nodes]);
});

test('a bigger farm: the first chunk at once, each further chunk in a later turn, every node once', async () => {
  const f = farm(120);
  f.fill.request();
  assert.deepEqual(f.chunks, [f.nodes.slice(0, 50)], 'only the first chunk before the caller returns');
  await turn();
  assert.equal(f.chunks.length, 2, 'one chunk a turn');
  await settle();
  assert.deepEqual(f.chunks, [f.nodes.slice(0, 50), f.nodes.slice(50, 100), f.nodes.slice(100)]);
  assert.equal(f.passes(), 1, 'a pass that filled every node says so once');
});

test('asked again during a pass: the pass goes on, then exactly one more pass', async () => {
  const f = farm(120);
  f.fill.request();
  f.fill.request();
  f.fill.request();
  assert.equal(f.chunks.length, 1, 'no second pass beside the first');
  await settle();
  assert.deepEqual(f.chunks.flat(), [...f.nodes, ...f.nodes], 'two passes, not three');
});

test('a chunk that fails: the first one’s error is the caller’s, a later one’s is reported and ends the pass', async () => {
  const f = farm(120);
  f.failWith(new Error('busy'));
  assert.throws(() => f.fill.request(), /busy/);
  f.failWith(undefined);
  f.fill.request();
  assert.equal(f.chunks.length, 1, 'the failed pass left nothing behind that blocks the next');
  f.failWith(new Error('disk full'));
  await settle();
  assert.deepEqual(f.failures.map(String), ['Error: disk full']);
  assert.equal(f.chunks.length, 1, 'the rest of that pass is dropped');
  assert.equal(f.passes(), 0, 'a dropped pass is not a pass');
  f.failWith(undefined);
  f.fill.request();
  await settle();
  assert.deepEqual(f.chunks.slice(1).flat(), f.nodes, 'the next pass fills every node');
});

test('no chunk runs once the hub has stopped', async () => {
  const f = farm(120);
  f.fill.request();
  f.stop();
  await settle();
  assert.equal(f.chunks.length, 1);
});

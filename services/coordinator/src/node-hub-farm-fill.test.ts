/** The hub fills a big farm a chunk of nodes per turn (farm-fill.ts): every node still gets its share, a departed one none. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { setup, until, type FakeStream } from './node-hub-test-helpers.js';

const assigned = (s: FakeStream) => s.sent.filter((m) => m.msg.msg.case === 'assign').length;

test('120 nodes and a new sweep: 50 filled at once, the rest in later turns, each to its prefetch; a node gone meanwhile gets nothing', async () => {
  const { store, hub, connect } = setup();
  store.cancelSweep('sw'); // the helper's own sweep: nothing to take while the nodes register
  const nodes = Array.from({ length: 120 }, (_, i) => connect(`n${i}`));
  await until(() => nodes.every((n) => n.cases().includes('registered')));
  assert.equal(nodes.reduce((a, n) => a + assigned(n), 0), 0);

  const spec = parseSpec({ prompts: ['a harbour at dusk'], seeds: { count: 300 } });
  store.createSweep({ name: 'big', spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 1_000).map((j) => ({ ...j, minVramMb: 0 })), 'sw-big');
  hub.dispatch();
  assert.deepEqual(
    nodes.map(assigned),
    nodes.map((_, i) => (i < 50 ? 2 : 0)),
    'the first chunk at once, in the caller’s turn',
  );
  // A node of a later chunk leaves before its turn comes.
  nodes[110]!.emit('end');
  await turn();
  await until(() => nodes.every((n, i) => i === 110 || assigned(n) === 2));
  assert.equal(assigned(nodes[110]!), 0, 'nothing leased to a node that left');
  assert.equal(store.counts('sw-big').running, 238);
  assert.equal(store.heldCount('n110'), 0);
  hub.stop();
});

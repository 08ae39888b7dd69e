/** NodeModels' holder counts: one count per event-loop turn, counted again after a report or a node joining or leaving. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { ModelCacheStateSchema } from '@nightshift/proto';
import { NodeModels } from './node-models.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const report = (cached: string[], loaded = '') => create(ModelCacheStateSchema, { cachedHashes: cached, loadedHash: loaded });

test('holder counts: kept within a turn, fresh after a report, a membership change or the turn', async () => {
  const online = new Set(['n1', 'n2']);
  let walks = 0;
  const models = new NodeModels(() => {
    walks++;
    return online;
  });
  models.update('n1', report([A]));
  models.update('n2', report([A], B));
  assert.deepEqual([...models.holderCounts()].sort(), [[A, 2], [B, 1]]);
  models.holderCounts();
  models.holderCounts();
  assert.equal(walks, 1, 'three picks in one turn walk the nodes once');

  models.update('n2', report([]));
  assert.deepEqual([...models.holderCounts()], [[A, 1]], 'a report is seen at once');

  online.delete('n1');
  models.connectedChanged();
  assert.deepEqual([...models.holderCounts()], [], 'a node that left holds nothing for the scheduler');

  online.add('n1');
  models.holderCounts();
  const before = walks;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([...models.holderCounts()], [[A, 1]], 'counted again in the next turn');
  assert.equal(walks, before + 1);
});

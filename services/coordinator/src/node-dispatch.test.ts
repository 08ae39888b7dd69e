/**
 * Filling an idle node when nothing is queued: whether any running job could
 * be copied is asked once a pass, and a "no" is trusted for
 * NO_COPY_RECHECK_MS (at a sweep's tail every node that runs dry asked it
 * again). The copies themselves are tested on real processes in
 * test/faults ("stragglers").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@nightshift/common';
import { NodeDispatch, NO_COPY_RECHECK_MS, type DispatchDeps, type DispatchTarget } from './node-dispatch.js';

function idleFarm(answers: boolean[]) {
  const asked: number[] = [];
  const copiesLookedFor: number[] = [];
  const engine: DispatchDeps<DispatchTarget>['engine'] = {
    heldCount: async () => 0,
    leaseNext: async () => undefined,
    leaseCopy: async () => undefined,
    anyStraggler: async (since) => {
      asked.push(since);
      return answers.shift() ?? false;
    },
    straggler: async (_node, _caps, since) => {
      copiesLookedFor.push(since);
      return undefined;
    },
  };
  const dispatch = new NodeDispatch<DispatchTarget>({
    engine,
    placement: { worthCopying: async () => false },
    models: async () => ({ state: undefined, holderCounts: new Map() }),
    log: createLogger('node-dispatch-test', 'silent'),
    opts: { leaseMs: 30_000, prefetchPerSlot: 2, stragglerMinMs: 60_000 },
    leased: () => {},
    send: () => {},
  });
  const node = (nodeId: string): DispatchTarget => ({ nodeId, caps: { backends: ['procedural'], models: [], vramMb: 8_192 }, slots: 1, sleep: undefined });
  return { dispatch, node, asked, copiesLookedFor };
}

test('an idle node asks whether any job could be copied; a no is trusted for NO_COPY_RECHECK_MS, a yes never', async () => {
  const { dispatch, node, asked, copiesLookedFor } = idleFarm([false, true, false]);
  const t0 = 100_000;
  // One pass over two idle nodes: asked once.
  const pass = { now: t0 };
  await Promise.all([dispatch.fill(node('a'), pass), dispatch.fill(node('b'), pass)]);
  assert.deepEqual(asked, [t0 - 60_000]);
  // Later passes within the recheck time: not asked again.
  await dispatch.fill(node('a'), { now: t0 + 1 });
  await dispatch.fill(node('b'), { now: t0 + NO_COPY_RECHECK_MS - 1 });
  assert.equal(asked.length, 1);
  assert.deepEqual(copiesLookedFor, [], 'no copy looked for after a no');
  // Once it has passed: asked, and a yes looks for a copy for this node.
  await dispatch.fill(node('a'), { now: t0 + NO_COPY_RECHECK_MS });
  assert.equal(asked.length, 2);
  assert.deepEqual(copiesLookedFor, [t0 + NO_COPY_RECHECK_MS - 60_000]);
  // A yes is not remembered: the next pass asks again (and gets a no).
  await dispatch.fill(node('b'), { now: t0 + NO_COPY_RECHECK_MS + 1 });
  assert.equal(asked.length, 3);
  assert.equal(copiesLookedFor.length, 1);
});

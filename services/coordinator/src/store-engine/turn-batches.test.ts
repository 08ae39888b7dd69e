import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TurnBatches } from './turn-batches.js';

/** A batch runner that records its batches and answers when told to. */
function recorder() {
  const batches: number[][] = [];
  const release: (() => void)[] = [];
  const batcher = new TurnBatches<number, string>(async (items) => {
    batches.push([...items]);
    await new Promise<void>((r) => release.push(r));
    return items.map((i) => (i < 0 ? new Error(`bad ${i}`) : `ok ${i}`));
  }, { max: 3 });
  const turn = () => new Promise<void>((r) => setImmediate(r));
  return { batches, release: () => release.shift()!(), batcher, turn };
}

test('calls made in one turn run as one batch, each caller answered with its own result or Error', async () => {
  const { batches, release, batcher, turn } = recorder();
  const a = batcher.add(1);
  const b = batcher.add(-2);
  await turn();
  assert.deepEqual(batches, [[1, -2]]);
  release();
  assert.equal(await a, 'ok 1');
  await assert.rejects(b, /bad -2/);
});

test('one batch at a time: calls made while one runs wait and go in the next, together; at most `max` a batch', async () => {
  const { batches, release, batcher, turn } = recorder();
  const first = batcher.add(1);
  await turn();
  const later = [batcher.add(2), batcher.add(3)];
  await turn();
  const evenLater = [batcher.add(4), batcher.add(5)];
  await turn();
  assert.deepEqual(batches, [[1]], 'nothing else runs beside the first');
  release();
  await first;
  // The next batch is scheduled once the first has answered its callers: a turn after it.
  await turn();
  await turn();
  assert.deepEqual(batches, [[1], [2, 3, 4]], 'the waiting calls, up to max');
  release();
  await Promise.all(later);
  await turn();
  await turn();
  assert.deepEqual(batches, [[1], [2, 3, 4], [5]]);
  release();
  assert.deepEqual(await Promise.all(evenLater), ['ok 4', 'ok 5']);
});

test('a batch that throws, or answers the wrong number of results, fails each of its callers; the next batch still runs', async () => {
  let calls = 0;
  const batcher = new TurnBatches<number, number>(async (items) => {
    calls++;
    if (calls === 1) throw new Error('database away');
    if (calls === 2) return [1];
    return items.map((i) => i * 10);
  });
  await Promise.all([assert.rejects(batcher.add(1), /database away/), assert.rejects(batcher.add(2), /database away/)]);
  await Promise.all([assert.rejects(batcher.add(1), /a batch of 2 answered 1/), assert.rejects(batcher.add(2), /a batch of 2 answered 1/)]);
  assert.deepEqual(await Promise.all([batcher.add(3), batcher.add(4)]), [30, 40]);
});

test('a batch that throws an error `alone` accepts runs again an item at a time: only the item that caused it fails', async () => {
  const runs: number[][] = [];
  const batcher = new TurnBatches<number, number>(
    async (items) => {
      runs.push([...items]);
      if (items.includes(13)) throw new Error(items.length > 1 ? 'refused: 13 in the batch' : 'refused: 13');
      return items.map((i) => i * 10);
    },
    { alone: (err) => /refused/.test(String(err)) },
  );
  const [a, b, c] = await Promise.allSettled([batcher.add(1), batcher.add(13), batcher.add(2)]);
  assert.deepEqual(runs, [[1, 13, 2], [1], [13], [2]]);
  assert.deepEqual([a, c], [{ status: 'fulfilled', value: 10 }, { status: 'fulfilled', value: 20 }]);
  assert.match(String((b as PromiseRejectedResult).reason), /refused: 13$/);
  // An error it does not accept fails the batch's every caller, with no rerun.
  const away = new TurnBatches<number, number>(async () => Promise.reject(new Error('database away')), { alone: (err) => /refused/.test(String(err)) });
  const all = await Promise.allSettled([away.add(1), away.add(2)]);
  assert.deepEqual(all.map((r) => r.status), ['rejected', 'rejected']);
});

test('run one by one after an error of its own, a call that fails for another reason fails the rest with it, unrun', async () => {
  const runs: number[][] = [];
  const batcher = new TurnBatches<number, number>(
    async (items) => {
      runs.push([...items]);
      if (items.includes(13)) throw new Error('refused: 13');
      if (items.length === 1 && items[0] === 2) throw new Error('database away');
      return items.map((i) => i * 10);
    },
    { alone: (err) => /refused/.test(String(err)) },
  );
  const settled = await Promise.allSettled([batcher.add(1), batcher.add(13), batcher.add(2), batcher.add(3)]);
  assert.deepEqual(runs, [[1, 13, 2, 3], [1], [13], [2]], '3 never ran on its own');
  assert.deepEqual(settled.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason))), [10, 'Error: refused: 13', 'Error: database away', 'Error: database away']);
});

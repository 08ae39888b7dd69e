import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeptPromise } from './kept-promise.js';

test('a read is shared while kept, read again after keepMs or a drop, and not kept when it fails', async () => {
  const clock = { t: 0 };
  let reads = 0;
  let fail = false;
  const kept = new KeptPromise(async () => {
    reads++;
    if (fail) throw new Error('away');
    return reads;
  }, 1_000, () => clock.t);
  assert.equal(await kept.get(), 1);
  clock.t = 1_000;
  assert.equal(await kept.get(), 1, 'kept for keepMs');
  clock.t = 1_001;
  assert.equal(await kept.get(), 2, 'read again after');
  kept.drop();
  assert.equal(await kept.get(), 3, 'read again after a drop');
  kept.drop();
  fail = true;
  await assert.rejects(kept.get(), /away/);
  fail = false;
  assert.equal(await kept.get(), 5, 'a failed read is not kept');
});

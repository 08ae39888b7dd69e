import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Sha256OffThread } from './hash-worker.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('the worker hash equals sha256 of the bytes, over chunks of every size, two hashes at once', async () => {
  const a = randomBytes(3 * 1024 * 1024 + 17);
  const b = randomBytes(700_001);
  const ha = new Sha256OffThread();
  const hb = new Sha256OffThread();
  // Uneven chunks: some small (sliced from a shared pool, so copied), some larger than a batch.
  for (let i = 0, n = 1; i < a.length; i += n, n = (n * 7 + 13) % 1_500_000 || 1) {
    ha.update(a.subarray(i, i + n));
    if (i < b.length) hb.update(b.subarray(i, Math.min(b.length, i + n)));
  }
  await ha.drained(0);
  assert.equal(ha.pending, 0, 'drained(0) waits until every byte handed over is hashed');
  assert.equal(await ha.digest(), sha(a));
  assert.equal(await hb.digest(), sha(b));
  assert.equal(await new Sha256OffThread().digest(), sha(Buffer.alloc(0)));
});

test('a dropped hash leaves the others intact', async () => {
  const dropped = new Sha256OffThread();
  const kept = new Sha256OffThread();
  const data = randomBytes(2 * 1024 * 1024);
  dropped.update(data.subarray(0, 1024 * 1024 + 5));
  kept.update(data);
  dropped.drop();
  assert.equal(await kept.digest(), sha(data));
});

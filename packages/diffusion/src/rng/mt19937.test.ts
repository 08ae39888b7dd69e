import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MT19937, low32 } from './mt19937.js';

test('the raw stream of seed 0 and 5489 matches the reference Mersenne Twister (numpy RandomState gives the same)', () => {
  const zero = new MT19937(0);
  assert.deepEqual([zero.nextUint32(), zero.nextUint32()], [2357136044, 2546248239]);
  // mt19937ar.c with its default seed 5489: the C++ std::mt19937 10000th output is 4123659995.
  const std = new MT19937(5489);
  let last = 0;
  for (let i = 0; i < 10_000; i++) last = std.nextUint32();
  assert.equal(last, 4123659995);
});

test('seeds keep their low 32 bits, negatives in two\'s complement', () => {
  assert.equal(low32(2 ** 32 + 7), 7);
  assert.equal(low32(-1), 0xffffffff);
  assert.equal(low32(12345n + (1n << 40n)), 12345);
  assert.throws(() => low32(1.5), RangeError);
});

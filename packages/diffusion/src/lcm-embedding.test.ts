import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { guidanceScaleEmbedding } from './lcm-embedding.js';

// Written by ../fixtures/make-scheduler-fixtures.py from diffusers' formula in torch float32.
const fixture = JSON.parse(readFileSync(new URL('../fixtures/schedulers.json', import.meta.url), 'utf8')) as {
  guidanceEmbedding: { guidanceScale: number; dim: number; args: number[]; values: number[] }[];
};

// The sinusoid arguments reach 1000·(g−1) rad, so one float ulp of torch's float32 exp (SLEEF, not always
// correctly rounded) moves sin/cos by up to ~5e-4: each value may differ by 1e-5 plus what two ulps of
// its argument allow (the pad of an odd dim is exactly 0).
test('the LCM guidance embedding matches diffusers up to two float ulps of each sinusoid argument (even and odd dims)', () => {
  assert.ok(fixture.guidanceEmbedding.length >= 3);
  for (const { guidanceScale, dim, args, values } of fixture.guidanceEmbedding) {
    const got = guidanceScaleEmbedding(guidanceScale, dim);
    assert.equal(got.length, values.length);
    const half = Math.floor(dim / 2);
    values.forEach((v, i) => {
      const arg = args[i % half]!;
      const slack = i < 2 * half ? 1e-5 + 2 * 2 ** -23 * Math.abs(arg) : 0;
      assert.ok(Math.abs(got[i]! - v) <= slack, `g ${guidanceScale} d ${dim} [${i}]: ${got[i]} vs ${v}`);
    });
  }
});

test('rows repeat per batch item; odd dims end in a zero pad; tiny dims are refused', () => {
  const two = guidanceScaleEmbedding(8, 8, 2);
  assert.deepEqual([...two.subarray(0, 8)], [...two.subarray(8)]);
  assert.equal(guidanceScaleEmbedding(4, 7)[6], 0);
  assert.throws(() => guidanceScaleEmbedding(4, 3), /≥ 4/);
});

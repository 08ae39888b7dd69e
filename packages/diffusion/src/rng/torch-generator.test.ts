import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TorchGenerator, type NormalKernel } from './torch-generator.js';
import { bitsOf } from './float32.js';

// Written by ../../fixtures/make-fixtures.py from Debian's python3-torch 1.13.
interface Draw {
  shape: number[];
  bits: string[];
  at?: number[];
  sha256?: string;
}
interface Fixture {
  torch: string;
  kernels: Record<NormalKernel, { seed: number; draws: Draw[] }[]>;
}
const fixture = JSON.parse(readFileSync(new URL('../../fixtures/torch-randn.json', import.meta.url), 'utf8')) as Fixture;

const hex = (x: number) => bitsOf(x).toString(16).padStart(8, '0');
const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Replays every fixture case on our generator; returns [values compared, values whose bits differ]. */
function replay(kernel: NormalKernel, onDraw?: (got: Float32Array, want: Draw, label: string) => void): [number, number] {
  let compared = 0;
  let differ = 0;
  for (const c of fixture.kernels[kernel]) {
    const g = new TorchGenerator(c.seed, kernel);
    c.draws.forEach((want, k) => {
      const got = g.randn(numel(want.shape));
      const at = want.at ?? [...got.keys()];
      at.forEach((i, n) => {
        compared++;
        if (hex(got[i]!) !== want.bits[n]) differ++;
      });
      onDraw?.(got, want, `seed ${c.seed}, draw ${k} ${JSON.stringify(want.shape)}`);
    });
  }
  return [compared, differ];
}

test('avx2 kernel: torch.randn bit for bit, every seed and shape (chunked, ragged tail, < 16 scalar path, cached normal across calls)', () => {
  const [compared] = replay('avx2', (got, want, label) => {
    const at = want.at ?? [...got.keys()];
    assert.deepEqual(
      at.map((i) => hex(got[i]!)),
      want.bits,
      label,
    );
    if (want.sha256) {
      const bytes = Buffer.from(got.buffer, got.byteOffset, got.byteLength); // little-endian, as numpy's '<f4'
      assert.equal(createHash('sha256').update(bytes).digest('hex'), want.sha256, `${label}: all ${got.length} values`);
    }
  });
  assert.ok(compared > 6000);
});

test('seed 0 gives the values quoted in pytorch issue #79703', () => {
  const sixteen = [...new TorchGenerator(0).randn(16)].map((v) => Math.round(v * 1e4) / 1e4);
  assert.deepEqual(sixteen.slice(0, 4), [-1.1258, -1.1524, -0.2506, -0.4339]);
  const fifteen = [...new TorchGenerator(0).randn(15)].map((v) => Math.round(v * 1e4) / 1e4);
  assert.deepEqual(fifteen.slice(0, 3), [1.541, -0.2934, -2.1788]);
});

test('default (non-AVX2) kernel: the scalar path is exact; chunked values differ from glibc\'s logf/cosf/sinf in under 2 %, by under 2e-6', () => {
  const [compared, differ] = replay('default', (got, want, label) => {
    if (numel(want.shape) < 16) assert.deepEqual([...got].map(hex), want.bits, label);
    const at = want.at ?? [...got.keys()];
    const view = new DataView(new ArrayBuffer(4));
    at.forEach((i, n) => {
      view.setUint32(0, parseInt(want.bits[n]!, 16));
      assert.ok(Math.abs(got[i]! - view.getFloat32(0)) < 2e-6, `${label} @${i}`);
    });
  });
  assert.ok(differ / compared < 0.02, `${differ} of ${compared} differ`);
});

test('a generator is a stream: draws of whole chunks continue where the last stopped', () => {
  const g = new TorchGenerator(1234);
  const a = g.randn(64);
  const b = g.randn(64);
  const both = new TorchGenerator(1234).randn(128);
  assert.deepEqual([...a, ...b], [...both]);
  assert.notDeepEqual([...a], [...b]);
});

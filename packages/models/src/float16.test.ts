/**
 * fp16 ↔ fp32 by bit manipulation: exact round trips for every half value,
 * round-to-nearest-even at ties, subnormals, overflow, and agreement bit for
 * bit with onnxruntime's own Cast in both directions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { float16Bits, float16Value, fromFloat16, toFloat16 } from './float16.js';
import { attr, DataType, GraphBuilder } from './onnx-builder.js';
import { FLOAT16 } from './tiny-sd-graph.js';

const isNaNBits = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

test('every half value survives half → float → half exactly', () => {
  for (let h = 0; h < 65536; h++) {
    const v = float16Value(h);
    if (isNaNBits(h)) {
      assert.ok(Number.isNaN(v), `0x${h.toString(16)}`);
      assert.ok(isNaNBits(float16Bits(v)));
    } else {
      assert.equal(float16Bits(v), h, `0x${h.toString(16)} = ${v}`);
    }
  }
  assert.deepEqual(Array.from(toFloat16(fromFloat16(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001)))), [0x3c00, 0xc000, 0x7bff, 0x0001]);
});

test('rounds to nearest, ties to even; subnormals, overflow and signs', () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0, 0x0000],
    [-0, 0x8000],
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: to even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9: to even
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [65504, 0x7bff], // largest half
    [65519, 0x7bff],
    [65520, 0x7c00], // tie to even rounds up to Infinity
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and 2^-24: to even (0)
    [2 ** -25 * 1.0001, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal units: to even
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up from the subnormal range into the normals
    [-(2 ** -30), 0x8000],
    [0.1, 0x2e66],
  ];
  for (const [v, bits] of cases) assert.equal(float16Bits(v), bits, `${v}`);
  assert.ok(isNaNBits(float16Bits(NaN)));
  assert.equal(float16Value(0x7c00), Infinity);
  assert.equal(float16Value(0x3555), 0.333251953125);
});

/** A one-node Cast model, to compare against onnxruntime's conversion. */
async function castSession(from: DataType, to: DataType): Promise<ort.InferenceSession> {
  const g = new GraphBuilder('cast');
  g.op('Cast', [g.input('x', from, ['n'])], { to: attr.int(to) }, 'y');
  g.output('y', to, ['n']);
  return ort.InferenceSession.create(g.toBytes());
}

test('agrees bit for bit with onnxruntime Cast, both directions', async () => {
  // float32 → float16 over many bit patterns: every exponent that matters, random mantissas, exact ties.
  const values: number[] = [];
  let s = 12345;
  const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
  const bits = new Uint32Array(1);
  const asFloat = new Float32Array(bits.buffer);
  for (let i = 0; i < 20000; i++) {
    const exp = 95 + (rand() % 50); // 2^-32 … 2^17: below the subnormals to past the overflow
    bits[0] = ((rand() & 1) << 31) | (exp << 23) | (rand() & 0x7fffff);
    if (i % 4 === 0) bits[0] = (bits[0]! & ~0x1fff) | 0x1000; // exactly halfway between two normal halves
    values.push(asFloat[0]!);
  }
  const down = await castSession(DataType.FLOAT, FLOAT16);
  const y = (await down.run({ x: new ort.Tensor('float32', Float32Array.from(values), [values.length]) })).y!;
  assert.equal(y.type, 'float16');
  const theirs = y.data as Uint16Array;
  const ours = toFloat16(values);
  let mismatches = 0;
  for (let i = 0; i < values.length; i++) if (theirs[i] !== ours[i]) mismatches++;
  assert.equal(mismatches, 0, `${mismatches} of ${values.length} differ from onnxruntime`);

  // float16 → float32 for all 65536 patterns.
  const all = new Uint16Array(65536).map((_, i) => i);
  const up = await castSession(FLOAT16, DataType.FLOAT);
  const back = (await up.run({ x: new ort.Tensor('float16', all, [all.length]) })).y!.data as Float32Array;
  const decoded = fromFloat16(all);
  for (let h = 0; h < 65536; h++) {
    if (isNaNBits(h)) assert.ok(Number.isNaN(back[h]!) && Number.isNaN(decoded[h]!));
    else assert.equal(decoded[h], back[h], `0x${h.toString(16)}`);
  }
  await down.release();
  await up.release();
});

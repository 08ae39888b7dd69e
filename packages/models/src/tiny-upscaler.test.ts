/**
 * nightshift-tiny-upscaler-x4 through onnxruntime-node: the folded sub-pixel
 * conv must equal its definition (onnxruntime's own bicubic Resize followed by
 * the 3×3 unsharp mask) away from the outermost output pixels.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { attr, DataType, GraphBuilder } from './onnx-builder.js';
import { ensureTinyUpscaler, TINY_UPSCALER_FILE, TINY_UPSCALER_SHARPEN, tinyUpscalerBytes } from './tiny-upscaler.js';

/** The definition, unfolded: Resize(cubic, ×4) → edge pad → depthwise 3×3 unsharp mask → clip. */
function referenceModel(): Uint8Array {
  const g = new GraphBuilder('reference');
  const x = g.input('input', DataType.FLOAT, ['b', 3, 'h', 'w']);
  const up = g.op('Resize', [x, '', g.floats('scales', [4], [1, 1, 4, 4])], {
    mode: attr.string('cubic'),
    coordinate_transformation_mode: attr.string('half_pixel'),
    cubic_coeff_a: attr.float(-0.75),
  });
  const gauss = [1, 2, 1, 2, 4, 2, 1, 2, 1].map((v) => v / 16);
  const k = gauss.map((v, i) => (i === 4 ? 1 + TINY_UPSCALER_SHARPEN : 0) - TINY_UPSCALER_SHARPEN * v);
  const padded = g.op('Pad', [up, g.int64s('pad', [8], [0, 0, 1, 1, 0, 0, 1, 1])], { mode: attr.string('edge') });
  const conv = g.op('Conv', [padded, g.floats('w', [3, 1, 3, 3], [...k, ...k, ...k])], { group: attr.int(3) });
  g.op('Clip', [conv, g.scalar(0), g.scalar(1)], {}, 'output');
  g.output('output', DataType.FLOAT, ['b', 3, 'H', 'W']);
  return g.toBytes();
}

async function run(model: Uint8Array, data: Float32Array, h: number, w: number) {
  const s = await ort.InferenceSession.create(model);
  const r = await s.run({ input: new ort.Tensor('float32', data, [1, 3, h, w]) });
  await s.release();
  return { dims: r.output!.dims, data: r.output!.data as Float32Array };
}

test('equals bicubic ×4 + unsharp mask (onnxruntime Resize) inside the outermost ring', async () => {
  const [h, w] = [13, 17];
  const data = new Float32Array(3 * h * w).map((_, i) => ((i * 7919) % 251) / 250);
  const got = await run(tinyUpscalerBytes(), data, h, w);
  const ref = await run(referenceModel(), data, h, w);
  assert.deepEqual(got.dims, [1, 3, 4 * h, 4 * w]);
  let max = 0;
  for (let c = 0; c < 3; c++)
    for (let y = 1; y < 4 * h - 1; y++)
      for (let x = 1; x < 4 * w - 1; x++) {
        const i = (c * 4 * h + y) * 4 * w + x;
        max = Math.max(max, Math.abs(got.data[i]! - ref.data[i]!));
      }
  assert.ok(max < 1e-5, `max difference ${max}`);
});

test('a flat image stays flat; bytes are deterministic and small', async () => {
  const flat = await run(tinyUpscalerBytes(), new Float32Array(3 * 5 * 6).fill(0.4), 5, 6);
  assert.ok(flat.data.every((v) => Math.abs(v - 0.4) < 1e-6));
  assert.deepEqual(tinyUpscalerBytes(), tinyUpscalerBytes());
  assert.ok(tinyUpscalerBytes().length < 16_384);
});

test('ensureTinyUpscaler writes the file once and returns its path', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nightshift-upscaler-'));
  try {
    const file = await ensureTinyUpscaler(dir);
    assert.equal(file, path.join(dir, TINY_UPSCALER_FILE));
    assert.deepEqual(new Uint8Array(await readFile(file)), tinyUpscalerBytes());
    const before = (await stat(file)).mtimeMs;
    assert.equal(await ensureTinyUpscaler(dir), file);
    assert.equal((await stat(file)).mtimeMs, before, 'current file left alone');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

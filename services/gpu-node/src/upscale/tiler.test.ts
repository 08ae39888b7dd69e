/**
 * The tiler with the built-in tiny ×4 model through onnxruntime-node: sizes,
 * and no seams (tiled output equals the whole-image output to within 1/255).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tinyUpscalerBytes } from '@nightshift/models';
import { TiledUpscaler, type RgbImage } from './tiler.js';
import { testCard } from './test-card.js';

function maxDiff(a: RgbImage, b: RgbImage): number {
  assert.deepEqual([a.width, a.height], [b.width, b.height]);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

describe('tiled upscaling', { timeout: 60_000 }, () => {
  let model: TiledUpscaler;
  before(async () => {
    model = await TiledUpscaler.load(tinyUpscalerBytes(), { threads: 1 });
  });

  test('64×64 → 256×256', async () => {
    const ticks: string[] = [];
    const out = await model.upscale(testCard(64, 64), { tileSize: 32, overlap: 8, onTile: (d, t) => ticks.push(`${d}/${t}`) });
    assert.deepEqual([out.width, out.height, out.data.length], [256, 256, 256 * 256 * 3]);
    assert.equal(model.scale, 4);
    assert.deepEqual(ticks, ['1/4', '2/4', '3/4', '4/4']);
  });

  test('tiled equals untiled within 1/255, for tiles that do not divide the image', async () => {
    const img = testCard(90, 70, 7);
    const whole = await model.upscale(img, { tileSize: 1024, overlap: 0 });
    for (const [tileSize, overlap] of [[32, 16], [24, 8], [17, 4], [64, 16]] as const) {
      const tiled = await model.upscale(img, { tileSize, overlap });
      assert.ok(maxDiff(tiled, whole) <= 1, `tile ${tileSize}, overlap ${overlap}: max difference ${maxDiff(tiled, whole)}`);
    }
  });

  test('without overlap the seams show (so the comparison above can see them)', async () => {
    const img = testCard(64, 64, 3);
    const whole = await model.upscale(img, { tileSize: 64, overlap: 0 });
    const seams = await model.upscale(img, { tileSize: 16, overlap: 0 });
    assert.ok(maxDiff(seams, whole) > 8, `expected visible seams, max difference ${maxDiff(seams, whole)}`);
  });

  test('a model with a fixed input size gets windows of exactly that size', async () => {
    const fixed = await TiledUpscaler.load(tinyUpscalerBytes({ fixedSize: 40 }), { threads: 1 });
    try {
      const img = testCard(100, 70, 5);
      const whole = await model.upscale(img, { tileSize: 1024, overlap: 0 });
      const tiled = await fixed.upscale(img, { tileSize: 128, overlap: 8 });
      assert.deepEqual([tiled.width, tiled.height], [400, 280]);
      assert.ok(maxDiff(tiled, whole) <= 1, `max difference ${maxDiff(tiled, whole)}`);
      // Smaller than one window: padded by repeating the edge, then cropped.
      const small = await fixed.upscale(testCard(30, 20), { overlap: 4 });
      assert.deepEqual([small.width, small.height], [120, 80]);
    } finally {
      await fixed.release();
    }
  });

  test('stops between tiles when aborted', async () => {
    const ac = new AbortController();
    await assert.rejects(
      model.upscale(testCard(64, 64), { tileSize: 16, overlap: 4, signal: ac.signal, onTile: (d) => d === 2 && ac.abort(new Error('stop')) }),
      /stop/,
    );
  });

  test('rejects a model that is not an image-to-image upscaler', async () => {
    await assert.rejects(TiledUpscaler.load(new Uint8Array([1, 2, 3])));
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { makeThumbnail } from './thumbnail.js';
import { renderProcedural, encodePng } from '@nightshift/models';

async function png(w: number, h: number): Promise<Buffer> {
  const img = renderProcedural('a red circle', 3, w, h);
  return encodePng(img.data, w, h);
}

test('WebP, longest side at most size, aspect kept', async () => {
  for (const [w, h, size, ew, eh] of [
    [512, 512, 256, 256, 256],
    [1024, 512, 256, 256, 128],
    [512, 1024, 100, 50, 100],
    [128, 64, 256, 128, 64], // never enlarged
  ] as const) {
    const thumb = await makeThumbnail(await png(w, h), size);
    const meta = await sharp(thumb).metadata();
    assert.equal(meta.format, 'webp');
    assert.deepEqual([meta.width, meta.height], [ew, eh], `${w}x${h} → ${size}`);
  }
});

test('deterministic and defaults to 256', async () => {
  const src = await png(768, 512);
  const a = await makeThumbnail(src);
  const b = await makeThumbnail(src);
  assert.ok(a.equals(b));
  assert.equal((await sharp(a).metadata()).width, 256);
});

test('rejects bad size and non-images', async () => {
  await assert.rejects(makeThumbnail(await png(64, 64), 0), RangeError);
  await assert.rejects(makeThumbnail(await png(64, 64), 1.5), RangeError);
  await assert.rejects(makeThumbnail(Buffer.from('nope')));
});

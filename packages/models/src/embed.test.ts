/**
 * The embedder's fast image path (own PNG decode + resampling) against
 * transformers.js's processor path, which defines what the model expects.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { bilinearDown, ClipEmbedder, decodePlainPng, plainPngSize } from './embed.js';
import { ensureTinyClip } from './mod.js';

/** A noisy RGB image: every byte value and every PNG row filter gets exercised. */
function noise(w: number, h: number, channels = 3): Buffer {
  const b = Buffer.alloc(w * h * channels);
  let s = 12345;
  for (let i = 0; i < b.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // Smooth ramps plus noise, so the encoder's adaptive filtering picks all filter types.
    b[i] = ((i % (w * channels)) + (s >>> 27)) & 255;
  }
  return b;
}

describe('ClipEmbedder image preprocessing', () => {
  let dir: string;
  let fast: ClipEmbedder;
  let slow: ClipEmbedder;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'embed-test-'));
    const folder = await ensureTinyClip(dir);
    fast = await ClipEmbedder.load(folder);
    slow = await ClipEmbedder.load(folder, { preprocess: 'processor' });
  });
  after(async () => {
    await fast.dispose();
    await slow.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  test('decodePlainPng matches sharp for every row filter, RGB and grey', async () => {
    for (const [channels, adaptive] of [[3, true], [3, false], [1, true]] as const) {
      const raw = noise(77, 41, channels);
      let img = sharp(raw, { raw: { width: 77, height: 41, channels } });
      if (channels === 1) img = img.toColourspace('b-w');
      const png = await img.png({ adaptiveFiltering: adaptive, compressionLevel: 6 }).toBuffer();
      const d = decodePlainPng(png);
      assert.ok(d, `decoded (channels ${channels})`);
      assert.deepEqual(d.info, { width: 77, height: 41, channels });
      assert.ok(Buffer.from(d.data).equals(raw), `pixels equal (channels ${channels}, adaptive ${adaptive})`);
    }
  });

  test('PNGs the fast path must not take are recognised', async () => {
    const rgba = await sharp(noise(8, 8, 4), { raw: { width: 8, height: 8, channels: 4 } }).png().toBuffer();
    assert.equal(plainPngSize(rgba), undefined);
    const interlaced = await sharp(noise(16, 16), { raw: { width: 16, height: 16, channels: 3 } }).png({ progressive: true }).toBuffer();
    assert.equal(decodePlainPng(interlaced), undefined);
    const sixteen = await sharp(noise(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
    assert.equal(plainPngSize(sixteen), undefined);
  });

  test('bilinearDown samples like sharp affine: equal at integer ratios, within 3/255 otherwise', async () => {
    const raw = noise(300, 200);
    for (const [tw, th, tolerance] of [[150, 100, 0], [75, 50, 0], [64, 64, 3], [224, 150, 3]] as const) {
      const want = await sharp(raw, { raw: { width: 300, height: 200, channels: 3 } }).affine([tw / 300, 0, 0, th / 200], { interpolator: 'bilinear' }).raw().toBuffer();
      const got = bilinearDown(raw, { width: 300, height: 200, channels: 3 }, tw, th);
      let max = 0;
      for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i]! - got[i]!));
      assert.ok(max <= tolerance, `${tw}x${th}: max difference ${max} > ${tolerance}`);
    }
  });

  test('fast and processor paths give the same embeddings (PNG, non-square, grey, alpha, JPEG)', async () => {
    const raw = noise(160, 96);
    const inputs = [
      await sharp(raw, { raw: { width: 160, height: 96, channels: 3 } }).png().toBuffer(), // resize + centre crop
      await sharp(raw, { raw: { width: 160, height: 96, channels: 3 } }).resize(128, 128).png({ adaptiveFiltering: true }).toBuffer(), // exact ×½
      await sharp(noise(100, 100, 1), { raw: { width: 100, height: 100, channels: 1 } }).toColourspace('b-w').png().toBuffer(), // grey
      await sharp(noise(64, 64, 4), { raw: { width: 64, height: 64, channels: 4 } }).png().toBuffer(), // alpha: processor path
      await sharp(raw, { raw: { width: 160, height: 96, channels: 3 } }).jpeg().toBuffer(), // sharp path
    ];
    const a = await fast.embedImages(inputs);
    const b = await slow.embedImages(inputs);
    assert.ok(fast.fastPreprocessing);
    assert.ok(!slow.fastPreprocessing);
    for (let i = 0; i < inputs.length; i++) {
      let max = 0;
      for (let j = 0; j < a[i]!.length; j++) max = Math.max(max, Math.abs(a[i]![j]! - b[i]![j]!));
      assert.ok(max < 0.02, `image ${i}: embeddings differ by ${max}`);
    }
    // Where the sampling is exact (×½), so are the embeddings.
    assert.deepEqual([...a[1]!], [...b[1]!]);
  });

  test('prepareImage + embedPrepared equals embedImages; corrupt bytes fail alone', async () => {
    const png = await sharp(noise(96, 96), { raw: { width: 96, height: 96, channels: 3 } }).png().toBuffer();
    const [one] = await fast.embedImages([png]);
    const [two] = await fast.embedPrepared([await fast.prepareImage(png)]);
    assert.deepEqual([...one!], [...two!]);
    await assert.rejects(fast.prepareImage(Buffer.from('not an image')));
  });
});

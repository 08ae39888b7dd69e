import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { BACKGROUND, COLORS } from '@nightshift/common';
import { encodePng } from './encode.js';
import { PreviewRamp } from './preview.js';
import { renderProcedural, type ProceduralImage } from './render.js';
import { parseScene } from './scene.js';

async function png(prompt: string, seed: number, width = 256, height = 256): Promise<Buffer> {
  const img = renderProcedural(prompt, seed, width, height);
  return encodePng(img.data, width, height);
}

/** Fraction of pixels within a small L1 distance of `rgb` (raw RGB is what the lossless PNG holds). */
function fractionNear(img: ProceduralImage, rgb: readonly number[], tol = 60): number {
  const { data } = img;
  let n = 0;
  for (let i = 0; i < data.length; i += 3) {
    const d = Math.abs(data[i]! - rgb[0]!) + Math.abs(data[i + 1]! - rgb[1]!) + Math.abs(data[i + 2]! - rgb[2]!);
    if (d < tol) n++;
  }
  return n / (img.width * img.height);
}

test('deterministic: same input gives identical pixels and PNG bytes', async () => {
  const a = renderProcedural('a red circle', 7, 256, 256);
  const b = renderProcedural('a red circle', 7, 256, 256);
  assert.ok(a.data.equals(b.data));
  assert.deepEqual(a.objects, b.objects);
  assert.ok((await png('a red circle', 7)).equals(await png('a red circle', 7)));
});

test('different seed, prompt or size gives different bytes', async () => {
  const base = await png('a red circle', 7);
  assert.ok(!base.equals(await png('a red circle', 8)));
  assert.ok(!base.equals(await png('a red circle!', 7)));
  assert.ok(!base.equals(await png('a red circle', 7, 256, 264)));
  // Seeds past 2^32 still matter.
  const big = 2 ** 40;
  assert.ok(!(await png('a red circle', big)).equals(await png('a red circle', big + 2 ** 32)));
});

test('the PNG is plain RGB of the image size, decoding to the same pixels', async () => {
  const img = renderProcedural('blue stripes', 3, 320, 192);
  const { data, info } = await sharp(await encodePng(img.data, 320, 192)).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [320, 192, 3]);
  assert.ok(data.equals(img.data));
});

test('the named colour dominates: "a red circle" is red, not blue', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const img = renderProcedural('a red circle', seed, 256, 256);
    const red = fractionNear(img, COLORS.red);
    const blue = fractionNear(img, COLORS.blue);
    const grey = fractionNear(img, BACKGROUND, 40);
    assert.ok(red >= 0.22 && red <= 0.5, `seed ${seed}: red ${red}`);
    assert.ok(blue < 0.002, `seed ${seed}: blue ${blue}`);
    assert.ok(grey > 0.45, `seed ${seed}: grey background ${grey}`);
  }
});

test('two named colours both appear; coverage stays 25–50 %', () => {
  for (const [w, h] of [
    [256, 256],
    [512, 128],
    [64, 64],
  ] as const) {
    const img = renderProcedural('a yellow square and a purple triangle', 11, w, h);
    const yellow = fractionNear(img, COLORS.yellow);
    const purple = fractionNear(img, COLORS.purple);
    assert.ok(yellow > 0.08 && purple > 0.08, `${w}x${h}: yellow ${yellow}, purple ${purple}`);
    assert.ok(yellow + purple >= 0.25 && yellow + purple <= 0.5, `${w}x${h}: coverage ${yellow + purple}`);
    assert.ok(fractionNear(img, COLORS.red) < 0.002);
  }
});

test('extreme sizes: 64x64 and 2048x64 hold the named colour', () => {
  for (const [w, h] of [
    [64, 64],
    [2048, 64],
  ] as const) {
    const img = renderProcedural('a blue circle', 9, w, h);
    assert.equal(img.data.length, w * h * 3);
    const blue = fractionNear(img, COLORS.blue);
    assert.ok(blue >= 0.2, `${w}x${h}: blue ${blue}`);
  }
});

test('scene parsing: colours bind to shapes; unnamed ones come from the prompt hash', () => {
  assert.deepEqual(parseScene('a red circle and a blue square'), [
    { color: 'red', shape: 'circle' },
    { color: 'blue', shape: 'square' },
  ]);
  assert.deepEqual(parseScene('Red and GREEN circles'), [
    { color: 'red', shape: 'circle' },
    { color: 'green', shape: 'circle' },
  ]);
  assert.deepEqual(parseScene('the constructor of a toString red circle'), [{ color: 'red', shape: 'circle' }]);
  assert.deepEqual(parseScene('striped, orange'), [{ color: 'orange', shape: 'stripes' }]);
  const orchid = parseScene('a beautiful orchid');
  assert.ok(orchid.length >= 1 && orchid.length <= 2);
  assert.deepEqual(parseScene('a beautiful orchid'), orchid);
  assert.ok(new Set(orchid.map((o) => o.shape)).size === 1);
  const cyan = parseScene('cyan');
  assert.equal(cyan.length, 1);
  assert.equal(cyan[0]!.color, 'cyan');
  assert.equal(parseScene('red blue green yellow orange purple pink cyan squares').length, 6);
});

test('invalid sizes and seeds are rejected', () => {
  for (const [w, h] of [
    [56, 256],
    [256, 2056],
    [100, 256],
    [256.5, 256],
  ]) {
    assert.throws(() => renderProcedural('x', 1, w!, h!), RangeError, `${w}x${h}`);
  }
  assert.throws(() => renderProcedural('x', 1.5, 256, 256), RangeError);
  assert.throws(() => renderProcedural('x', Number.NaN, 256, 256), RangeError);
});

test('preview ramp: deterministic WebP frames from noise to the image, within maxSide', async () => {
  const img = renderProcedural('a green triangle', 5, 512, 256);
  const ramp = new PreviewRamp(img, 'a green triangle', 5, { maxSide: 128, quality: 60 });
  assert.deepEqual([ramp.width, ramp.height], [128, 64]);
  const again = new PreviewRamp(img, 'a green triangle', 5, { maxSide: 128, quality: 60 });
  const final = await sharp(img.data, { raw: { width: 512, height: 256, channels: 3 } }).resize(128, 64, { kernel: 'nearest' }).raw().toBuffer();
  const diffs: number[] = [];
  for (const t of [0, 0.5, 1]) {
    const frame = await ramp.frameAt(t);
    assert.ok(frame.equals(await again.frameAt(t)), `t=${t} is deterministic`);
    const meta = await sharp(frame).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['webp', 128, 64]);
    const raw = await sharp(frame).removeAlpha().raw().toBuffer();
    let d = 0;
    for (let i = 0; i < raw.length; i++) d += Math.abs(raw[i]! - final[i]!);
    diffs.push(d / raw.length);
  }
  assert.ok(diffs[0]! > diffs[1]! && diffs[1]! > diffs[2]!, `diffs ${diffs.join(', ')}`);
  assert.ok(diffs[2]! < 15, `the last frame differs by ${diffs[2]}`);
});

test('raw render is fast: 256x256 well under 100 ms', () => {
  renderProcedural('warm up', 0, 256, 256);
  const t = performance.now();
  for (let i = 0; i < 5; i++) renderProcedural('a red circle and a blue square', i, 256, 256);
  const each = (performance.now() - t) / 5;
  assert.ok(each < 100, `${each.toFixed(1)} ms per render`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { ProceduralBackend, PROCEDURAL_MODEL, parseScene, renderProcedural } from './procedural.js';
import type { RenderProgress, RenderRequest } from './backend.js';
import { BACKGROUND, COLORS, readPngTextChunks } from '@nightshift/common';

const backend = new ProceduralBackend();
const never = new AbortController().signal;

function req(prompt: string, seed: number, width = 256, height = 256, steps = 20): RenderRequest {
  return { jobId: 'job-1', renderKey: 'key-1', kind: 'render', prompt, seed, params: { width, height, steps }, model: PROCEDURAL_MODEL };
}

async function render(r: RenderRequest): Promise<{ png: Buffer; progress: RenderProgress[] }> {
  const progress: RenderProgress[] = [];
  const { png } = await backend.render(r, (p) => progress.push(p), never);
  return { png, progress };
}

/** Fraction of pixels within a small L1 distance of `rgb`. */
async function fractionNear(png: Buffer, rgb: readonly number[], tol = 60): Promise<number> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3);
  let n = 0;
  for (let i = 0; i < data.length; i += 3) {
    const d = Math.abs(data[i]! - rgb[0]!) + Math.abs(data[i + 1]! - rgb[1]!) + Math.abs(data[i + 2]! - rgb[2]!);
    if (d < tol) n++;
  }
  return n / (info.width * info.height);
}

test('identity: name and model, never presented as AI', () => {
  assert.equal(backend.name, 'procedural');
  assert.deepEqual(backend.models, [PROCEDURAL_MODEL]);
});

test('deterministic: same input gives identical bytes, previews included', async () => {
  const a = await render(req('a red circle', 7));
  const b = await render(req('a red circle', 7));
  assert.ok(a.png.equals(b.png));
  assert.equal(a.progress.length, b.progress.length);
  a.progress.forEach((p, i) => assert.ok((p.preview ?? Buffer.alloc(0)).equals(b.progress[i]!.preview ?? Buffer.alloc(0))));
  // A fresh backend instance too (no hidden state).
  const c = await new ProceduralBackend().render(req('a red circle', 7), () => {}, never);
  assert.ok(a.png.equals(c.png));
});

test('different seed, prompt or size gives different bytes', async () => {
  const base = (await render(req('a red circle', 7))).png;
  assert.ok(!base.equals((await render(req('a red circle', 8))).png));
  assert.ok(!base.equals((await render(req('a red circle!', 7))).png));
  assert.ok(!base.equals((await render(req('a red circle', 7, 256, 264))).png));
  // Seeds past 2^32 still matter.
  const big = 2 ** 40;
  assert.ok(!(await render(req('a red circle', big))).png.equals((await render(req('a red circle', big + 2 ** 32))).png));
});

test('output is a plain PNG of the requested size without text chunks', async () => {
  const { png } = await render(req('blue stripes', 3, 320, 192));
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  assert.equal(meta.width, 320);
  assert.equal(meta.height, 192);
  assert.equal(meta.channels, 3);
  assert.deepEqual(readPngTextChunks(png), {});
});

test('the named colour dominates: "a red circle" is red, not blue', async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const { png } = await render(req('a red circle', seed));
    const red = await fractionNear(png, COLORS.red);
    const blue = await fractionNear(png, COLORS.blue);
    const grey = await fractionNear(png, BACKGROUND, 40);
    assert.ok(red >= 0.22 && red <= 0.5, `seed ${seed}: red ${red}`);
    assert.ok(blue < 0.002, `seed ${seed}: blue ${blue}`);
    assert.ok(grey > 0.45, `seed ${seed}: grey background ${grey}`);
  }
});

test('two named colours both appear; coverage stays 25–50 %', async () => {
  for (const [w, h] of [
    [256, 256],
    [512, 128],
    [64, 64],
  ] as const) {
    const { png } = await render(req('a yellow square and a purple triangle', 11, w, h));
    const yellow = await fractionNear(png, COLORS.yellow);
    const purple = await fractionNear(png, COLORS.purple);
    assert.ok(yellow > 0.08 && purple > 0.08, `${w}x${h}: yellow ${yellow}, purple ${purple}`);
    assert.ok(yellow + purple >= 0.25 && yellow + purple <= 0.5, `${w}x${h}: coverage ${yellow + purple}`);
    assert.ok((await fractionNear(png, COLORS.red)) < 0.002);
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

test('progress: one callback per step, a few decodable WebP previews from noise to image', async () => {
  const steps = 50;
  const r = req('a green triangle', 5, 256, 256, steps);
  const { png, progress } = await render(r);
  assert.deepEqual(
    progress.map((p) => [p.step, p.total]),
    Array.from({ length: steps }, (_, i) => [i + 1, steps]),
  );
  const previews = progress.filter((p) => p.preview);
  assert.ok(previews.length >= 2 && previews.length <= 9, `previews: ${previews.length}`);
  assert.ok(progress[steps - 1]!.preview, 'last step has a preview');

  const final = await sharp(png).resize(128, 128, { kernel: 'nearest' }).raw().toBuffer();
  const diffs: number[] = [];
  for (const p of previews) {
    const meta = await sharp(p.preview!).metadata();
    assert.equal(meta.format, 'webp');
    assert.ok(meta.width! <= 128 && meta.height! <= 128);
    assert.ok(p.preview!.length < 20_000, `preview ${p.preview!.length} bytes`);
    const raw = await sharp(p.preview!).removeAlpha().raw().toBuffer();
    let d = 0;
    for (let i = 0; i < raw.length; i++) d += Math.abs(raw[i]! - final[i]!);
    diffs.push(d / raw.length);
  }
  // Early frames are mostly noise, the last one is (lossy) image.
  assert.ok(diffs[0]! > 3 * diffs[diffs.length - 1]!, `diffs ${diffs.join(', ')}`);
  assert.ok(diffs[diffs.length - 1]! < 15, `last preview differs by ${diffs[diffs.length - 1]}`);
});

test('few steps: every step can preview; one step works', async () => {
  const three = await render(req('a red circle', 1, 64, 64, 3));
  assert.equal(three.progress.length, 3);
  assert.equal(three.progress.filter((p) => p.preview).length, 3);
  const one = await render(req('a red circle', 1, 64, 64, 1));
  assert.equal(one.progress.length, 1);
  assert.ok(one.progress[0]!.preview);
});

test('abort between steps rejects with AbortError', async () => {
  const ac = new AbortController();
  const seen: number[] = [];
  await assert.rejects(
    backend.render(
      req('a red circle', 1, 256, 256, 50),
      (p) => {
        seen.push(p.step);
        if (p.step === 3) ac.abort();
      },
      ac.signal,
    ),
    (err: Error) => err.name === 'AbortError',
  );
  assert.deepEqual(seen, [1, 2, 3]);

  // Aborted from another callback while running: the render yields each step, so it lands before step 2.
  const ac2 = new AbortController();
  let calls = 0;
  const running = backend.render(
    req('a red circle', 1, 256, 256, 1000),
    () => {
      if (calls++ === 0) setImmediate(() => ac2.abort(new Error('custom reason')));
    },
    ac2.signal,
  );
  await assert.rejects(running, { name: 'AbortError' });
  assert.equal(calls, 1);

  let called = false;
  await assert.rejects(
    backend.render(req('a red circle', 1), () => (called = true), AbortSignal.abort()),
    { name: 'AbortError' },
  );
  assert.equal(called, false);
});

test('invalid sizes and params are rejected before any work', async () => {
  const bad: [number, number, number][] = [
    [56, 256, 10],
    [256, 2056, 10],
    [100, 256, 10],
    [256.5, 256, 10],
    [256, 256, 0],
    [256, 256, 1.5],
    [256, 256, 100_000],
  ];
  for (const [w, h, steps] of bad) {
    let called = false;
    await assert.rejects(
      backend.render(req('x', 1, w, h, steps), () => (called = true), never),
      RangeError,
      `${w}x${h}/${steps}`,
    );
    assert.equal(called, false);
  }
  await assert.rejects(backend.render({ ...req('x', 1), seed: 1.5 }, () => {}, never), RangeError);
  await assert.rejects(backend.render({ ...req('x', 1), seed: Number.NaN }, () => {}, never), RangeError);
  const r = { ...req('x', 1), params: { width: '256', height: 256, steps: 10 } } as unknown as RenderRequest;
  await assert.rejects(backend.render(r, () => {}, never), RangeError);
});

test('extreme sizes render: 64x64 and 2048x64', async () => {
  for (const [w, h] of [
    [64, 64],
    [2048, 64],
  ] as const) {
    const { png } = await render(req('a blue circle', 9, w, h, 2));
    const meta = await sharp(png).metadata();
    assert.equal(meta.width, w);
    assert.equal(meta.height, h);
    const blue = await fractionNear(png, COLORS.blue);
    assert.ok(blue >= 0.2, `${w}x${h}: blue ${blue}`);
  }
});

test('raw render is fast: 256x256 well under 100 ms', () => {
  renderProcedural('warm up', 0, 256, 256);
  const t = performance.now();
  for (let i = 0; i < 5; i++) renderProcedural('a red circle and a blue square', i, 256, 256);
  const each = (performance.now() - t) / 5;
  assert.ok(each < 100, `${each.toFixed(1)} ms per render`);
});

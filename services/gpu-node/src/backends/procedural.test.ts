// The backend's contract (progress, previews, abort, validation, output); what the
// painter draws is tested beside it in packages/models/src/painter/painter.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { encodePng, renderProcedural } from '@nightshift/models';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';
import { ProceduralBackend } from './procedural.js';
import type { RenderProgress, RenderRequest } from './backend.js';
import { COLORS, readPngTextChunks } from '@nightshift/common';

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

test("the PNG is the painter's image for that prompt, seed and size (so it differs when any of them does)", async () => {
  for (const [prompt, seed, w, h] of [
    ['a red circle', 7, 256, 256],
    ['a red circle', 8, 256, 256],
    ['a yellow square and a purple triangle', 2 ** 40, 512, 128],
  ] as const) {
    const { png } = await render(req(prompt, seed, w, h, 3));
    const img = renderProcedural(prompt, seed, w, h);
    assert.ok(png.equals(await encodePng(img.data, w, h)), `${prompt} / ${seed} / ${w}x${h}`);
  }
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

/**
 * The upscale backend with the built-in tiny ×4 model: PNG in, ×4 PNG out,
 * the source's text chunks kept, and a clear failure without a model.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { addPngTextChunk, formatA1111Parameters, readPngTextChunks } from '@nightshift/common';
import { ensureTinyUpscaler, TINY_UPSCALER_NAME } from '@nightshift/models';
import { RenderFailure, type RenderProgress, type RenderRequest } from './backend.js';
import { NO_MODEL_MESSAGE, UpscaleBackend } from './upscale.js';
import { TiledUpscaler } from '../upscale/tiler.js';
import { testCard } from '../upscale/test-card.js';

let dir: string;
let modelPath: string;

const PARAMETERS = formatA1111Parameters({ prompt: 'a red circle, 🌙 ünïcode', seed: 7, width: 64, height: 64, steps: 12, model: 'procedural-v1', backend: 'procedural', extra: {} });

async function sourcePng(channels: 3 | 4 = 3, size = 64): Promise<Buffer> {
  const card = testCard(size, size, 11);
  let raw = Buffer.from(card.data);
  if (channels === 4) {
    raw = Buffer.alloc(size * size * 4);
    for (let i = 0; i < size * size; i++) {
      raw.set(card.data.subarray(i * 3, i * 3 + 3), i * 4);
      raw[i * 4 + 3] = i % size < size / 2 ? 255 : 64;
    }
  }
  const png = await sharp(raw, { raw: { width: size, height: size, channels } }).png().toBuffer();
  return addPngTextChunk(addPngTextChunk(png, 'Software', 'nightshift test'), 'parameters', PARAMETERS);
}

function upscaleReq(png: Buffer, over: Partial<RenderRequest> = {}): RenderRequest {
  return { jobId: 'up-1', renderKey: 'rk', kind: 'upscale', prompt: '', seed: 0, params: { width: 64, height: 64, steps: 1 }, model: 'default', loadInput: async () => png, ...over };
}

async function fails(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof RenderFailure && re.test(e.message));
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nightshift-upscale-test-'));
  modelPath = await ensureTinyUpscaler(dir);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('upscale backend', { timeout: 60_000 }, () => {
  test('64×64 → 256×256 PNG with the parameters chunk kept and the upscaler recorded', async () => {
    const backend = new UpscaleBackend({ modelPath, tileSize: 32, overlap: 8, threads: 1 });
    assert.deepEqual(backend.models, [TINY_UPSCALER_NAME]);
    const progress: RenderProgress[] = [];
    const src = await sourcePng();
    const { png, model, device } = await backend.render(upscaleReq(src), (p) => progress.push(p), new AbortController().signal);
    assert.equal(device, 'cpu', "the tiler's CPU provider: provenance names no GPU");
    const meta = await sharp(png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 256, 256]);
    assert.equal(model, TINY_UPSCALER_NAME);
    const text = readPngTextChunks(png);
    assert.equal(text.parameters, PARAMETERS);
    assert.equal(text.Software, 'nightshift test');
    assert.equal(text.postprocessing, `Postprocess upscale by: 4, Postprocess upscaler: ${TINY_UPSCALER_NAME}, Postprocess size: 256x256`);
    assert.deepEqual(progress.at(-1), { step: 4, total: 4 });

    // The stored pixels are the tiler's, untiled equivalent included.
    const whole = await TiledUpscaler.load(modelPath, { threads: 1 });
    const raw = await sharp(src).raw().toBuffer({ resolveWithObject: true });
    const ref = await whole.upscale({ data: new Uint8Array(raw.data), width: 64, height: 64 }, { tileSize: 64 });
    await whole.release();
    const got = await sharp(png).raw().toBuffer();
    let max = 0;
    for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i]! - ref.data[i]!));
    assert.ok(max <= 1, `tiled PNG vs whole-image upscale: max difference ${max}`);
    await backend.close();
  });

  test('alpha is upscaled too', async () => {
    const backend = new UpscaleBackend({ modelPath, threads: 1 });
    const { png } = await backend.render(upscaleReq(await sourcePng(4, 32)), () => {}, new AbortController().signal);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [128, 128, 4]);
    assert.equal(data[3], 255, 'left half opaque');
    assert.equal(data[(127 * 128 + 127) * 4 + 3], 64, 'right half translucent');
    await backend.close();
  });

  test('without a model every job fails with a clear error, not a plain resize', async () => {
    const backend = new UpscaleBackend({});
    assert.deepEqual(backend.models, []);
    await fails(backend.render(upscaleReq(await sourcePng()), () => {}, new AbortController().signal), /no upscale model is configured/);
    assert.match(NO_MODEL_MESSAGE, /does not fall back to a plain resize/);
  });

  test('a model file that cannot load, a render job, an oversized source: clear failures', async () => {
    const signal = new AbortController().signal;
    await fails(new UpscaleBackend({ modelPath: path.join(dir, 'missing.onnx') }).render(upscaleReq(await sourcePng()), () => {}, signal), /could not load upscale model/);
    const backend = new UpscaleBackend({ modelPath, maxInputPixels: 32 * 32 });
    await fails(backend.render(upscaleReq(await sourcePng(), { kind: 'render' }), () => {}, signal), /only runs upscale jobs/);
    await fails(backend.render(upscaleReq(await sourcePng()), () => {}, signal), /larger than this node's upscale limit/);
    await fails(backend.render(upscaleReq(Buffer.from('not an image')), () => {}, signal), /cannot be decoded/);
    await backend.close();
  });
});

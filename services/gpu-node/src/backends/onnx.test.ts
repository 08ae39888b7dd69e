import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { tempDir } from '@nightshift/devfarm';
import { buildTinySd, TINY_SD_NAME } from '@nightshift/models';
import { RenderFailure, type RenderProgress, type RenderRequest } from './backend.js';
import { OnnxBackend } from './onnx.js';

let tmp: ReturnType<typeof tempDir>;
let backend: OnnxBackend;

function job(over: Omit<Partial<RenderRequest>, 'params'> & { params?: Record<string, unknown> } = {}): RenderRequest {
  const { params, ...rest } = over;
  return { jobId: 'j', renderKey: 'rk', kind: 'render', prompt: 'a red circle', seed: 1234, model: TINY_SD_NAME, ...rest, params: { width: 64, height: 64, steps: 4, guidance: 7.5, ...params } };
}

async function render(req: RenderRequest, signal = new AbortController().signal) {
  const progress: RenderProgress[] = [];
  const result = await backend.render(req, (p) => progress.push(p), signal);
  return { ...result, progress };
}

describe('onnx backend over nightshift-tiny-sd', { timeout: 120_000 }, () => {
  before(() => {
    tmp = tempDir('nightshift-onnx-');
    const broken = path.join(tmp.dir, 'broken');
    mkdirSync(path.join(broken, 'unet'), { recursive: true });
    writeFileSync(path.join(broken, 'model_index.json'), '{}');
    backend = new OnnxBackend({ models: { broken, absent: path.join(tmp.dir, 'nowhere') }, dataDir: tmp.dir, threads: 1, previewIntervalMs: 0 });
  });
  after(async () => {
    await backend?.close();
    tmp?.cleanup();
  });

  test('advertises the configured models and the built-in one', () => {
    assert.deepEqual([...backend.models].sort(), ['absent', 'broken', TINY_SD_NAME].sort());
  });

  test('txt2img: a 64×64 PNG, a WebP preview after every step, A1111 fields; same seed same bytes, other seeds differ', async () => {
    const a = await render(job({ params: { negative_prompt: 'blurry' } }));
    const meta = await sharp(a.png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 64, 64]);
    assert.deepEqual(a.progress.map((p) => `${p.step}/${p.total}`), ['1/4', '2/4', '3/4', '4/4']);
    for (const p of a.progress) assert.equal((await sharp(p.preview!).metadata()).format, 'webp');
    assert.equal(a.model, TINY_SD_NAME);
    assert.equal(a.infotext?.sampler, 'Euler'); // the tiny model's scheduler_config: EulerDiscreteScheduler
    assert.equal(a.infotext?.negativePrompt, 'blurry');
    assert.match(a.infotext?.modelHash ?? '', /^[0-9a-f]{10}$/);
    assert.equal(a.device, 'cpu', 'the CPU provider (the default): provenance names no GPU');
    const again = await render(job({ params: { negative_prompt: 'blurry' } }));
    assert.ok(again.png.equals(a.png), 'same job, same bytes');
    const other = await render(job({ seed: 1235, params: { negative_prompt: 'blurry' } }));
    assert.ok(!other.png.equals(a.png), 'another seed, another image');
    const noNegative = await render(job());
    assert.ok(!noNegative.png.equals(a.png), 'the negative prompt takes part in guidance');
  });

  test('previews are spaced by previewIntervalMs; the last step always has one', async () => {
    const throttled = new OnnxBackend({ models: {}, dataDir: tmp.dir, threads: 1 });
    try {
      const progress: RenderProgress[] = [];
      await throttled.render(job(), (p) => progress.push(p), new AbortController().signal);
      assert.deepEqual(progress.map((p) => [p.step, !!p.preview]), [[1, false], [2, false], [3, false], [4, true]]);
    } finally {
      await throttled.close();
    }
  });

  test('every sampler runs; guidance 1 skips the unconditional pass', async () => {
    const outs = new Set<string>();
    for (const sampler of ['euler', 'euler_a', 'ddim', 'dpmpp_2m', 'dpmpp_2m_karras', 'lcm']) {
      const r = await render(job({ params: { sampler, guidance: sampler === 'lcm' ? 1 : 5 } }));
      assert.equal(r.progress.length, 4, sampler);
      outs.add(r.png.toString('base64'));
    }
    assert.equal(outs.size, 6, 'each sampler paints its own picture');
  });

  test('img2img: the init image through the VAE encoder, strength sets the steps run', async () => {
    const first = await render(job());
    const asked: string[] = [];
    const loadImage = async (ref: string) => {
      asked.push(ref);
      return first.png;
    };
    const r = await render(job({ loadImage, params: { init: 'images/abc.png', strength: 0.5 } }));
    assert.deepEqual(asked, ['images/abc.png']);
    assert.deepEqual(r.progress.map((p) => `${p.step}/${p.total}`), ['1/2', '2/2']);
    assert.ok(!r.png.equals(first.png));
    const full = await render(job({ loadImage, params: { init: 'images/abc.png', strength: 1 } }));
    assert.equal(full.progress.length, 4);
    await assert.rejects(render(job({ params: { init: 'images/abc.png' } })), /cannot read stored images/);
    await assert.rejects(render(job({ loadImage: () => Promise.reject(new Error('NoSuchKey')), params: { init: 'images/abc.png' } })), /cannot read the init image.*NoSuchKey/);
  });

  test('other exports of the same model (fp16, int64 ids and timestep, VAE encoder returning its distribution) render the same picture', async () => {
    const variant = path.join(tmp.dir, 'variant');
    await buildTinySd(variant, { precision: 'fp16', inputIds: 'int64', timestep: 'int64', vaeEncoderOutput: 'latent_parameters' });
    const other = new OnnxBackend({ models: { variant }, dataDir: tmp.dir, threads: 1 });
    try {
      const mean = async (a: Buffer, b: Buffer) => {
        const [x, y] = await Promise.all([a, b].map((p) => sharp(p).raw().toBuffer()));
        let sum = 0;
        for (let i = 0; i < x!.length; i++) sum += Math.abs(x![i]! - y![i]!);
        return sum / x!.length;
      };
      const reference = await render(job());
      const fp16 = await other.render(job({ model: 'variant' }), () => {}, new AbortController().signal);
      assert.ok((await mean(fp16.png, reference.png)) < 2, 'fp16 rounding moves pixels by little');
      assert.notEqual(fp16.infotext?.modelHash, reference.infotext?.modelHash);
      const loadImage = () => Promise.resolve(reference.png);
      const img2img = await other.render(job({ model: 'variant', loadImage, params: { init: 'images/a.png', strength: 0.5 } }), () => {}, new AbortController().signal);
      assert.equal((await sharp(img2img.png).metadata()).width, 64);
    } finally {
      await other.close();
    }
  });

  test('bad params, unknown and broken models fail as RenderFailure with the reason', async () => {
    await assert.rejects(render(job({ params: { sampler: 'heun' } })), (e: Error) => e instanceof RenderFailure && /unknown sampler "heun"; valid samplers: euler, euler_a/.test(e.message));
    await assert.rejects(render(job({ params: { width: 60 } })), /width must be a positive multiple of 8/);
    await assert.rejects(render(job({ params: { strength: 2, init: 'images/x.png' } })), /strength must be within 0…1/);
    await assert.rejects(render(job({ model: 'sd-xl' })), /model "sd-xl" is not on this node/);
    await assert.rejects(render(job({ model: 'broken' })), (e: Error) => e instanceof RenderFailure && /broken.*missing files:.*unet\/model\.onnx/.test(e.message));
    await assert.rejects(render(job({ model: 'absent' })), /no such model folder/);
  });

  test('an abort stops the run between steps', async () => {
    const ctl = new AbortController();
    const progress: number[] = [];
    await assert.rejects(
      backend.render(job({ params: { steps: 20 } }), (p) => {
        progress.push(p.step);
        if (p.step === 2) ctl.abort();
      }, ctl.signal),
      (e: Error) => e.name === 'AbortError',
    );
    assert.deepEqual(progress, [1, 2]);
  });
});

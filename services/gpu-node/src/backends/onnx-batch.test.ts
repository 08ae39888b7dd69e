/**
 * params.batch on the onnx backend: a job's bytes do not depend on the batch
 * it was rendered in (same renderKey ⇒ same bytes), siblings are checked,
 * loaded models are bounded (LRU), and the execution provider is what the
 * machine can use.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { tempDir } from '@nightshift/devfarm';
import { ensureTinySd, TINY_SD_NAME } from '@nightshift/models';
import { RenderFailure, type RenderProgress, type RenderRequest } from './backend.js';
import { OnnxBackend } from './onnx.js';

let tmp: ReturnType<typeof tempDir>;
let backend: OnnxBackend;

function job(seed: number, params: Record<string, unknown> = {}, over: Partial<RenderRequest> = {}): RenderRequest {
  return { jobId: `j${seed}`, renderKey: `rk${seed}`, kind: 'render', prompt: 'a lighthouse at dusk', seed, model: TINY_SD_NAME, params: { width: 64, height: 48, steps: 5, guidance: 6, batch: 4, negative_prompt: 'blurry', ...params }, ...over };
}

const alone = (req: RenderRequest) => backend.render(req, () => {}, new AbortController().signal);

describe('onnx backend batches', { timeout: 180_000 }, () => {
  before(() => {
    tmp = tempDir('nightshift-onnx-batch-');
    // Configured [cuda, cpu]: this machine has no CUDA build, so the node renders on the CPU (and says so).
    backend = new OnnxBackend({ models: {}, dataDir: tmp.dir, threads: 1, previewIntervalMs: 0, executionProviders: ['cuda', 'cpu'] });
  });
  after(async () => {
    await backend?.close();
    tmp?.cleanup();
  });

  test('each image of a batch is byte-identical to its seed rendered alone, for every sampler and for img2img', async () => {
    for (const sampler of ['euler_a', 'dpmpp_2m_karras', 'ddim', 'lcm']) {
      const seeds = [1234, 99, 7];
      const progress: { index: number; p: RenderProgress }[] = [];
      const batch = await backend.renderBatch(
        seeds.map((s) => job(s, { sampler })),
        (index, p) => progress.push({ index, p }),
        new AbortController().signal,
      );
      assert.equal(batch.length, 3);
      for (const [k, seed] of seeds.entries()) {
        const single = await alone(job(seed, { sampler }));
        assert.ok(batch[k]!.png.equals(single.png), `${sampler}: seed ${seed} in a batch of 3 = seed ${seed} alone`);
        assert.deepEqual(batch[k]!.infotext, single.infotext);
        assert.deepEqual(progress.filter((x) => x.index === k).map((x) => x.p.step), [1, 2, 3, 4, 5]);
        assert.ok(progress.filter((x) => x.index === k).every((x) => x.p.preview && x.p.preview.length > 0), 'each image has its own preview');
      }
      assert.equal(new Set(batch.map((r) => r.png.toString('base64'))).size, 3, 'different seeds differ');
    }
    const init = (await alone(job(5))).png;
    const loadImage = () => Promise.resolve(init);
    const img2img = (seed: number) => job(seed, { init: 'images/x.png', strength: 0.6 }, { loadImage });
    const pair = await backend.renderBatch([img2img(1), img2img(2)], () => {}, new AbortController().signal);
    assert.ok(pair[1]!.png.equals((await alone(img2img(2))).png), 'img2img: the same bytes in a batch as alone');
  });

  test('only siblings share a batch: jobs differing in more than the seed are refused', async () => {
    await assert.rejects(backend.renderBatch([job(1), job(2, { steps: 6 })], () => {}, new AbortController().signal), (e: Error) => e instanceof RenderFailure && /j2 cannot share a batch with j1: only seeds may differ/.test(e.message));
    await assert.rejects(backend.renderBatch([job(1), job(2, {}, { prompt: 'another' })], () => {}, new AbortController().signal), /only seeds may differ/);
    await assert.rejects(backend.renderBatch([], () => {}, new AbortController().signal), /at least one job/);
  });

  test('the execution provider is the first usable one of the configured list', async () => {
    assert.equal(await backend.executionProvider(), 'cpu');
    const probe = await backend.providers();
    assert.deepEqual(probe.usable, ['cpu']);
    assert.deepEqual(probe.failed.map((f) => f.provider), ['cuda']);
    assert.ok(probe.failed[0]!.error.length > 0, 'with onnxruntime’s reason');
  });

  test('at most maxLoadedModels stay loaded: the least recently used one is released, a released one loads again', async () => {
    const folder = await ensureTinySd(path.join(tmp.dir, 'models'));
    const lru = new OnnxBackend({ models: { a: folder, b: folder }, dataDir: tmp.dir, threads: 1, maxLoadedModels: 1 });
    try {
      const render = (model: string) => lru.render(job(3, {}, { model }), () => {}, new AbortController().signal);
      const first = await render('a');
      assert.deepEqual(lru.loadedModels(), ['a']);
      await render('b');
      assert.deepEqual(lru.loadedModels(), ['b']);
      // Two renders at once on different models: neither is released under the other.
      const [x, y] = await Promise.all([render('a'), render('b')]);
      assert.ok(x.png.equals(first.png) && y.png.equals(first.png), 'a model loaded again renders the same bytes');
      assert.equal(lru.loadedModels().length, 1);
    } finally {
      await lru.close();
    }
  });
});

/**
 * The backends take a pulled registry model: the onnx backend renders from a
 * diffusers folder fetched from a real s3rver exactly what it renders from
 * the same folder on disk, the upscale backend upscales with a pulled
 * upscaler, and the helpers pick what each backend is given.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { createLogger, readPngTextChunks, Storage } from '@nightshift/common';
import { startS3Server, tempDir, type S3Server } from '@nightshift/devfarm';
import { ensureTinySd, ensureTinyUpscaler, TINY_SD_NAME } from '@nightshift/models';
import { addModel } from '@nightshift/registry';
import { NodeModels } from '../model-pull.js';
import { RenderFailure, type RenderRequest } from './backend.js';
import { generatorModelPath, upscalerFile } from './model-source.js';
import { OnnxBackend } from './onnx.js';
import { UpscaleBackend } from './upscale.js';

let tmp: ReturnType<typeof tempDir>;

describe('what a backend takes from a pulled model', () => {
  before(() => {
    tmp = tempDir('nightshift-model-source-');
  });
  after(() => tmp?.cleanup());

  const folder = (name: string, files: string[]) => {
    const dir = path.join(tmp.dir, name);
    for (const f of files) {
      mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      writeFileSync(path.join(dir, f), f);
    }
    return dir;
  };

  test('upscale: the one .onnx file, wherever it is in the folder; none or several is a clear failure', async () => {
    assert.equal(await upscalerFile(folder('one', ['x4.onnx']), 'up'), path.join(tmp.dir, 'one', 'x4.onnx'));
    assert.equal(await upscalerFile(folder('nested', ['README.md', 'weights/x4.ONNX']), 'up'), path.join(tmp.dir, 'nested', 'weights', 'x4.ONNX'));
    await assert.rejects(upscalerFile(folder('none', ['x4.pth']), 'up'), (e: unknown) => e instanceof RenderFailure && /registry model up holds no \.onnx file/.test(e.message));
    await assert.rejects(upscalerFile(folder('two', ['a.onnx', 'b/c.onnx']), 'up'), /holds 2 \.onnx files \(a\.onnx, b\/c\.onnx\): the upscale backend needs exactly one/);
  });

  test('exec {model_path}: the file of a one-file model, else the folder', async () => {
    assert.equal(await generatorModelPath(folder('ckpt', ['model.safetensors'])), path.join(tmp.dir, 'ckpt', 'model.safetensors'));
    assert.equal(await generatorModelPath(folder('diffusers', ['model_index.json', 'unet/model.onnx'])), path.join(tmp.dir, 'diffusers'));
  });
});

describe('backends rendering from models pulled out of the bucket', { timeout: 120_000 }, () => {
  let s3: S3Server;
  let models: NodeModels;
  let storage: Storage;
  const signal = new AbortController().signal;

  before(async () => {
    tmp = tempDir('nightshift-model-source-s3-');
    s3 = await startS3Server(path.join(tmp.dir, 's3'));
    storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
    models = new NodeModels({ settings: { dir: path.join(tmp.dir, 'cache'), capBytes: 1e9, attempts: 2, retryDelayMs: 10 }, storage, log: createLogger('model-source-test', 'silent') });
  });
  after(async () => {
    await s3?.stop();
    tmp?.cleanup();
  });

  test('onnx: a pulled diffusers folder renders the same bytes as that folder on disk, under the registry name', async () => {
    const local = await ensureTinySd(path.join(tmp.dir, 'local'));
    const { manifest } = await addModel(storage, 'my-sd', 'diffusion', local);
    const pulled = await models.use(manifest.hash, 'my-sd', signal);
    const backend = new OnnxBackend({ models: {}, dataDir: path.join(tmp.dir, 'data'), threads: 1 });
    try {
      const job = (model: string, modelPath?: string): RenderRequest => ({
        jobId: 'j',
        renderKey: 'rk',
        kind: 'render',
        prompt: 'a red circle',
        seed: 42,
        params: { width: 64, height: 64, steps: 3, guidance: 7 },
        model,
        ...(modelPath ? { modelPath } : {}),
      });
      const fromRegistry = await backend.render(job('my-sd', pulled.path), () => {}, signal);
      const builtIn = await backend.render(job(TINY_SD_NAME), () => {}, signal);
      assert.ok(fromRegistry.png.equals(builtIn.png), 'the same model, the same image');
      assert.equal(fromRegistry.model, 'my-sd');
      await assert.rejects(backend.render(job('my-sd'), () => {}, signal), /not on this node/, 'without the pulled folder the name means nothing here');
    } finally {
      pulled.release();
      await backend.close();
    }
  });

  test('upscale: a node with no upscaler configured upscales with the pulled one, named after it', async () => {
    const file = await ensureTinyUpscaler(path.join(tmp.dir, 'local'));
    const { manifest } = await addModel(storage, 'my-upscaler', 'upscaler', file);
    const pulled = await models.use(manifest.hash, 'my-upscaler', signal);
    const bare = new UpscaleBackend();
    const configured = new UpscaleBackend({ modelPath: file });
    try {
      const source = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 40, b: 90 } } }).png().toBuffer();
      const job = (modelPath?: string): RenderRequest => ({ jobId: 'u', renderKey: 'rk', kind: 'upscale', prompt: '', seed: 0, params: { width: 16, height: 16, steps: 1 }, model: 'my-upscaler', loadInput: async () => source, ...(modelPath ? { modelPath } : {}) });
      const out = await bare.render(job(pulled.path), () => {}, signal);
      assert.equal(out.model, 'my-upscaler');
      assert.deepEqual([(await sharp(out.png).metadata()).width, (await sharp(out.png).metadata()).height], [64, 64]);
      assert.match(readPngTextChunks(out.png).postprocessing ?? '', /Postprocess upscaler: my-upscaler/);
      const same = await configured.render(job(), () => {}, signal);
      const pixels = async (png: Buffer) => (await sharp(png).raw().toBuffer()).toString('hex');
      assert.equal(await pixels(out.png), await pixels(same.png), 'the same upscaler, the same pixels');
      await assert.rejects(bare.render(job(), () => {}, signal), /no upscale model is configured/);
    } finally {
      pulled.release();
      await bare.close();
      await configured.close();
    }
  });
});

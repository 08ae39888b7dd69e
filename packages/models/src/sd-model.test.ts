/**
 * SdModel over nightshift-tiny-sd and broken copies of it: every session
 * runs at two sizes and two batch sizes with the expected shapes; the fp16
 * and other exporters' interface variants give the same numbers as the
 * fp32 default; and a missing file, a corrupt model, a renamed or retyped
 * tensor each fail with an SdModelError that names it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DataType, GraphBuilder } from './onnx-builder.js';
import { SdModelError } from './sd-folder.js';
import { SdModel, type FloatTensor } from './sd-model.js';
import { buildTinySd, TINY_SD_HIDDEN, type TinySdOptions } from './tiny-sd.js';

const SIZES = [
  { width: 64, height: 64 },
  { width: 128, height: 96 },
] as const;

/** Deterministic values in −1…1 (no RNG needed). */
function wave(n: number, phase: number): Float32Array {
  return new Float32Array(n).map((_, i) => Math.sin(i * 0.37 + phase) * Math.cos(i * 0.011));
}

function assertFinite(t: FloatTensor, what: string): void {
  for (const v of t.data) assert.ok(Number.isFinite(v), `${what}: ${v}`);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function slice(t: FloatTensor, index: number): FloatTensor {
  const per = t.data.length / t.dims[0]!;
  return { data: t.data.slice(index * per, (index + 1) * per), dims: [1, ...t.dims.slice(1)] };
}

/** A UNet-shaped model whose `sample` input has another name or dtype. */
function oddUnet(sampleName: string, sampleType: DataType): Uint8Array {
  const g = new GraphBuilder('odd_unet');
  const x = g.input(sampleName, sampleType, ['batch', 4, 'h', 'w']);
  const t = g.input('timestep', DataType.FLOAT, []);
  const e = g.input('encoder_hidden_states', DataType.FLOAT, ['batch', 77, TINY_SD_HIDDEN]);
  const xf = sampleType === DataType.FLOAT ? x : g.op('Cast', [x], { to: { kind: 'int', value: DataType.FLOAT } });
  const bias = g.op('Add', [g.op('ReduceMean', [e], { keepdims: { kind: 'int', value: 0 } }), t]);
  g.op('Add', [xf, bias], {}, 'out_sample');
  g.output('out_sample', DataType.FLOAT, ['batch', 4, 'h', 'w']);
  return g.toBytes();
}

describe('SdModel over nightshift-tiny-sd', () => {
  let tmp: string;
  let model: SdModel;
  const loaded: SdModel[] = [];

  /** Builds a variant (or a copy to break) and returns its folder. */
  async function build(name: string, options: TinySdOptions = {}): Promise<string> {
    const dir = path.join(tmp, name);
    await buildTinySd(dir, options);
    return dir;
  }

  async function load(dir: string): Promise<SdModel> {
    const m = await SdModel.load(dir, { threads: 1 });
    loaded.push(m);
    return m;
  }

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'sd-model-test-'));
    model = await load(await build('default'));
  });

  after(async () => {
    await Promise.all(loaded.map((m) => m.release()));
    await rm(tmp, { recursive: true, force: true });
  });

  test('reads the interface from the sessions', () => {
    assert.equal(model.hiddenSize, TINY_SD_HIDDEN);
    assert.equal(model.maxTokens, 77);
    assert.equal(model.precision, 'fp32');
    assert.equal(model.scalingFactor, 0.18215);
    assert.ok(model.hasVaeEncoder);
    assert.equal(model.timestepCondDim, undefined);
    assert.deepEqual(model.executionProviders, ['cpu']);
    assert.equal(model.folder.schedulerConfig._class_name, 'EulerDiscreteScheduler');
  });

  test('every session runs at 64×64 and 128×96, batch 1 and 2: shapes, finite, deterministic', async () => {
    for (const { width, height } of SIZES) {
      for (const batch of [1, 2]) {
        const at = `${width}x${height} batch ${batch}`;
        const ids = model.tokenize(['a red circle', 'two blue squares'].slice(0, batch));
        const text = await model.encodeText(ids);
        assert.deepEqual(text.hidden.dims, [batch, 77, TINY_SD_HIDDEN], at);
        assert.deepEqual(text.pooled?.dims, [batch, TINY_SD_HIDDEN], at);
        assertFinite(text.hidden, at);

        const latentDims = [batch, 4, height / 8, width / 8];
        const sample = { data: wave(batch * 4 * (height / 8) * (width / 8), 1), dims: latentDims };
        const eps = await model.unet(sample, 999, text.hidden);
        assert.deepEqual(eps.dims, latentDims, at);
        assertFinite(eps, at);
        assert.deepEqual((await model.unet(sample, 999, text.hidden)).data, eps.data, `${at}: same inputs, same output`);

        const image = await model.decode(sample);
        assert.deepEqual(image.dims, [batch, 3, height, width], at);
        assertFinite(image, at);
        const latents = await model.encode(image);
        assert.deepEqual(latents.dims, latentDims, at);
        assertFinite(latents, at);
      }
    }
  });

  test('the UNet: batch rows are independent, and the output depends on the prompt and the timestep', async () => {
    const text = await model.encodeText(model.tokenize(['a red circle', 'two blue squares']));
    const sample = { data: wave(2 * 4 * 8 * 8, 2), dims: [2, 4, 8, 8] };
    const both = await model.unet(sample, 500, text.hidden);
    for (const i of [0, 1]) {
      const one = await model.unet(slice(sample, i), 500, slice(text.hidden, i));
      assert.ok(maxAbsDiff(slice(both, i).data, one.data) < 1e-5, `row ${i}`);
    }
    const otherPrompt = await model.unet(slice(sample, 0), 500, slice(text.hidden, 1));
    assert.ok(maxAbsDiff(otherPrompt.data, slice(both, 0).data) > 1e-3, 'the prompt matters');
    const otherTime = await model.unet(slice(sample, 0), 20, slice(text.hidden, 0));
    assert.ok(maxAbsDiff(otherTime.data, slice(both, 0).data) > 1e-3, 'the timestep matters');
  });

  test('decode(encode(image)) gives the picture back, blurred', async () => {
    // Left half one colour, right half another, in the VAE's −1…1 range.
    const w = 64;
    const h = 64;
    const data = new Float32Array(3 * h * w);
    const left = [0.6, -0.2, 0.1];
    const right = [-0.5, 0.3, 0.7];
    for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[(c * h + y) * w + x] = (x < w / 2 ? left : right)[c]!;
    const back = await model.decode(await model.encode({ data, dims: [1, 3, h, w] }));
    // Away from the edge between the halves the colours come back, give or take the decoder's texture.
    let max = 0;
    let sum = 0;
    let n = 0;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < h; y++) {
        for (const x of [4, 12, 51, 59]) {
          const e = Math.abs(back.data[(c * h + y) * w + x]! - data[(c * h + y) * w + x]!);
          max = Math.max(max, e);
          sum += e;
          n++;
        }
      }
    }
    assert.ok(sum / n < 0.08 && max < 0.25, `mean error ${sum / n}, max ${max}`);
  });

  test('fp16, int64 ids, int64 or per-batch timestep, latent_parameters: same numbers as the fp32 default', async () => {
    const fp16 = await load(await build('fp16', { precision: 'fp16', inputIds: 'int64', timestep: 'int64', vaeEncoderOutput: 'latent_parameters' }));
    const perBatch = await load(await build('per-batch', { timestep: 'batch' }));
    assert.equal(fp16.precision, 'fp16');
    const ids = model.tokenize(['a red circle', 'stripes']);
    const ref = await model.encodeText(ids);
    const half = await fp16.encodeText(ids);
    assert.ok(maxAbsDiff(half.hidden.data, ref.hidden.data) < 0.02);
    assert.ok(maxAbsDiff(half.pooled!.data, ref.pooled!.data) < 0.02);

    const sample = { data: wave(2 * 4 * 12 * 16, 3), dims: [2, 4, 12, 16] };
    const eps = await model.unet(sample, 500, ref.hidden);
    assert.ok(maxAbsDiff((await fp16.unet(sample, 500, ref.hidden)).data, eps.data) < 0.02, 'fp16 UNet');
    assert.ok(maxAbsDiff((await fp16.unet(sample, 500.7, ref.hidden)).data, eps.data) < 0.02, 'an int64 timestep is truncated, as diffusers feeds it');
    assert.ok(maxAbsDiff((await perBatch.unet(sample, 500, ref.hidden)).data, eps.data) < 1e-5, 'a [batch] timestep fed as [1]');

    const image = await model.decode(sample);
    assert.ok(maxAbsDiff((await fp16.decode(sample)).data, image.data) < 0.02, 'fp16 VAE decoder');
    const mean = await model.encode(image);
    assert.ok(maxAbsDiff((await fp16.encode(image)).data, mean.data) < 0.05, 'latent_parameters: the mean');
    // With noise, mean + exp(logvar/2)·noise (the tiny encoder's logvar is −6).
    const noise = new Float32Array(mean.data.length).fill(1);
    const sampled = await fp16.encode(image, noise);
    const shift = Math.exp(-3);
    assert.ok(Math.abs(sampled.data[0]! - mean.data[0]! - shift) < 0.05);
  });

  test('wrong inputs to the wrappers fail with a clear error, not a crash', async () => {
    const text = await model.encodeText(model.tokenize(['x']));
    await assert.rejects(model.encodeText(Int32Array.of(1, 2, 3)), /3 ids is not a whole number of 77-token rows/);
    await assert.rejects(model.unet({ data: new Float32Array(3 * 64), dims: [1, 3, 8, 8] }, 1, text.hidden), (e: Error) => e instanceof SdModelError && /sample: expected \[batch, 4, h, w\]/.test(e.message));
    await assert.rejects(model.unet({ data: new Float32Array(2 * 4 * 64), dims: [2, 4, 8, 8] }, 1, text.hidden), /encoder_hidden_states: expected \[2, 77, 32\]/);
    await assert.rejects(model.encode({ data: new Float32Array(3 * 60 * 60), dims: [1, 3, 60, 60] }), /multiples of 8/);
    const txt2img = await SdModel.load(path.join(tmp, 'default'), { vaeEncoder: false });
    loaded.push(txt2img);
    assert.equal(txt2img.hasVaeEncoder, false);
    await assert.rejects(txt2img.encode({ data: new Float32Array(3 * 64), dims: [1, 3, 8, 8] }), /vae_encoder\/model\.onnx: no VAE encoder is loaded/);
  });

  test('a folder missing unet/model.onnx fails naming it', async () => {
    const dir = await build('no-unet');
    await unlink(path.join(dir, 'unet', 'model.onnx'));
    await assert.rejects(SdModel.load(dir), (e: Error) => e instanceof SdModelError && e.file === 'unet/model.onnx' && e.message.includes('unet/model.onnx: is missing'));
    await unlink(path.join(dir, 'model_index.json'));
    await assert.rejects(SdModel.load(dir), /model_index.json is missing: not a diffusers model folder/);
    await assert.rejects(SdModel.load(path.join(tmp, 'nowhere')), /no such model folder/);
  });

  test('a folder with only the slow tokenizer files says what transformers.js needs', async () => {
    const dir = await build('slow-tokenizer');
    await unlink(path.join(dir, 'tokenizer', 'tokenizer.json'));
    await assert.rejects(SdModel.load(dir), /tokenizer\/tokenizer.json \(only the slow tokenizer files/);
  });

  test('a corrupt model.onnx fails naming it', async () => {
    const dir = await build('corrupt');
    await writeFile(path.join(dir, 'unet', 'model.onnx'), Buffer.from('this is not an ONNX model at all'));
    await assert.rejects(SdModel.load(dir), (e: Error) => e instanceof SdModelError && /unet\/model\.onnx: onnxruntime cannot open it/.test(e.message));
  });

  test('a UNet whose input is renamed or retyped fails naming the tensor', async () => {
    const dir = await build('renamed');
    await writeFile(path.join(dir, 'unet', 'model.onnx'), oddUnet('latents', DataType.FLOAT));
    await assert.rejects(SdModel.load(dir), (e: Error) => {
      assert.ok(e instanceof SdModelError);
      assert.match(e.message, /unet\/model\.onnx: no input named "sample" \(expected float32 or float16 \[batch, 4, height, width\]\); the model's inputs: "latents": float32 \[batch, 4, h, w\]/);
      return true;
    });
    await writeFile(path.join(dir, 'unet', 'model.onnx'), oddUnet('sample', DataType.INT64));
    await assert.rejects(SdModel.load(dir), /unet\/model\.onnx: input "sample": expected float32 or float16 \[batch, 4, height, width\], found int64 \[batch, 4, h, w\]/);
  });

  test('an execution provider this onnxruntime build lacks fails clearly', { skip: cudaInstalled() && 'the CUDA provider is installed here' }, async () => {
    const dir = path.join(tmp, 'default');
    await assert.rejects(SdModel.load(dir, { executionProviders: ['cuda', 'cpu'] }), (e: Error) => e instanceof SdModelError && /with execution providers cuda, cpu: .*ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node/s.test(e.message));
  });
});

function cudaInstalled(): boolean {
  const bin = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  return existsSync(path.join(bin, 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so'));
}

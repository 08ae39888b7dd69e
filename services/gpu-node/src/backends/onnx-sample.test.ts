import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { parseSchedulerConfig } from '@nightshift/diffusion';
import { tempDir } from '@nightshift/devfarm';
import { ensureTinySd, SdModel } from '@nightshift/models';
import { sampleLatent, type SampleInput } from './onnx-sample.js';
import { vaeImageToRgb } from './onnx-image.js';

let tmp: ReturnType<typeof tempDir>;
let model: SdModel;

before(async () => {
  tmp = tempDir('nightshift-onnx-sample-');
  model = await SdModel.load(await ensureTinySd(path.join(tmp.dir, 'models')), { threads: 1 });
});
after(async () => {
  await model?.release();
  tmp?.cleanup();
});

const base = (): Omit<SampleInput, 'seeds'> => ({
  model,
  prompt: 'a lighthouse at dusk',
  negativePrompt: 'blurry',
  width: 64,
  height: 48,
  steps: 6,
  guidance: 6,
  sampler: 'euler_a',
  schedulerConfig: parseSchedulerConfig(model.folder.schedulerConfig),
  signal: new AbortController().signal,
});

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('a batch of seeds gives each image what a batch of one with its seed gives (initial and ancestral noise per image)', async () => {
  const seeds = [1234, 99, 7];
  const batched = await sampleLatent({ ...base(), seeds });
  assert.deepEqual(batched.dims, [3, 4, 6, 8]);
  const per = batched.latent.length / 3;
  for (const [k, seed] of seeds.entries()) {
    const single = await sampleLatent({ ...base(), seeds: [seed] });
    // Bit for bit on the CPU provider: onnxruntime's kernels sum each image's values in the same order whatever the batch.
    assert.equal(maxDiff(batched.latent.subarray(k * per, (k + 1) * per), single.latent), 0, `image ${k} (seed ${seed})`);
  }
  const image = await model.decode({ data: batched.latent, dims: batched.dims });
  assert.notDeepEqual(vaeImageToRgb(image, 0).rgb, vaeImageToRgb(image, 1).rgb);
  assert.throws(() => vaeImageToRgb(image, 3), /outside a batch of 3/);
});

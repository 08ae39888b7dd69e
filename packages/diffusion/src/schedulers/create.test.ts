import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchNoise, TorchGenerator } from '../rng/torch-generator.js';
import { SAMPLERS } from '../samplers.js';
import { parseSchedulerConfig } from './config.js';
import { createScheduler, img2imgStartIndex } from './create.js';
import { DdimScheduler } from './ddim.js';

const SD15 = parseSchedulerConfig({
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  steps_offset: 1,
  clip_sample: false,
});
const f = Math.fround;

test('every sampler name builds its scheduler; DPM++ 2M Karras differs from DPM++ 2M only by its sigmas', () => {
  for (const name of SAMPLERS) assert.equal(createScheduler(name, SD15, 4).sampler, name);
  const plain = createScheduler('dpmpp_2m', SD15, 10);
  const karras = createScheduler('dpmpp_2m_karras', SD15, 10);
  assert.equal(plain.sigmas![0], karras.sigmas![0]); // both start at σ_max
  assert.notDeepEqual(plain.sigmas, karras.sigmas);
  assert.equal(karras.sigmas!.at(-1), 0);
  // Class defaults for a config without timestep_spacing: Euler linspace, DDIM and LCM their own.
  assert.equal(createScheduler('euler', SD15, 20).timesteps[0], 999);
  assert.equal(createScheduler('ddim', SD15, 20).timesteps[0], 951);
  assert.deepEqual(createScheduler('lcm', SD15, 4).timesteps, [999, 759, 499, 259]);
  assert.deepEqual(createScheduler('lcm', SD15, 1).timesteps, [999]);
});

test('steps are validated: positive integers, LCM at most its original 50', () => {
  assert.throws(() => createScheduler('euler', SD15, 0), /positive integer/);
  assert.throws(() => createScheduler('ddim', SD15, 2.5), /positive integer/);
  assert.throws(() => createScheduler('lcm', SD15, 51), /at most original_inference_steps = 50/);
  assert.throws(() => createScheduler('euler', SD15, 4).scaleModelInput(new Float32Array(1), 4), /outside 0…3/);
});

test('DPM++ 2M is multistep: skipping a step is refused', () => {
  const s = createScheduler('dpmpp_2m', SD15, 5);
  const x = new Float32Array(4).fill(1);
  const g = new TorchGenerator(0);
  s.step(new Float32Array(4), 0, x, g);
  assert.throws(() => s.step(new Float32Array(4), 2, x, g), /step 2 after step 0/);
});

test('img2img starts at N − ⌊N·strength⌋ and noises the clean latent to that step (diffusers add_noise)', () => {
  assert.equal(img2imgStartIndex(20, 0.75), 5);
  assert.equal(img2imgStartIndex(20, 1), 0);
  assert.equal(img2imgStartIndex(20, 0.01), null); // nothing to denoise
  assert.throws(() => img2imgStartIndex(20, 1.5), /strength/);
  const x0 = Float32Array.from([0.5, -1]);
  const n = Float32Array.from([1, 2]);
  const euler = createScheduler('euler', SD15, 10);
  const sigma = euler.sigmas![3]!;
  assert.deepEqual([...euler.addNoise(x0, n, 3)], [f(0.5 + f(sigma)), f(-1 + f(2 * sigma))]);
  const ddim = createScheduler('ddim', SD15, 10);
  const plain = ddim.addNoise(Float32Array.from([0]), Float32Array.from([1]), 0)[0]!;
  assert.ok(plain > 0.99 && plain < 1); // √(1 − ᾱ_901): nearly all noise
  const dpm = createScheduler('dpmpp_2m', SD15, 10);
  const s = dpm.sigmas![0]!;
  assert.ok(Math.abs(dpm.addNoise(Float32Array.from([1]), Float32Array.from([0]), 0)[0]! - 1 / Math.sqrt(s * s + 1)) < 1e-6);
});

test('a batch of seeds draws each image from its own generator: image k matches a batch of one with its seed', () => {
  const batch = batchNoise([new TorchGenerator(1), new TorchGenerator(2)]);
  const first = batch.randn(2 * 64);
  const second = batch.randn(2 * 64);
  const alone = new TorchGenerator(2);
  assert.deepEqual([...first.subarray(64)], [...alone.randn(64)]);
  assert.deepEqual([...second.subarray(64)], [...alone.randn(64)]);
  assert.throws(() => batch.randn(3), /do not split into 2 images/);
});

test('which samplers draw step noise, and how much: one latent-sized randn per step for Euler a, all but the last for LCM', () => {
  const numel = 16;
  for (const [name, draws] of [['euler', 0], ['euler_a', 6], ['ddim', 0], ['dpmpp_2m', 0], ['dpmpp_2m_karras', 0], ['lcm', 5]] as const) {
    const seen: number[] = [];
    const counting = { randn: (n: number) => (seen.push(n), new Float32Array(n)) };
    const s = createScheduler(name, SD15, 6);
    let x: Float32Array = new Float32Array(numel).fill(0.5);
    for (let i = 0; i < 6; i++) x = s.step(new Float32Array(numel).fill(0.1), i, s.scaleModelInput(x, i), counting).prevSample;
    assert.deepEqual(seen, new Array(draws).fill(numel), name);
  }
});

test('stepNoise says which schedulers draw step noise: a planned noise stream (NoiseWorkers) holds exactly what step() takes', () => {
  const steps = 5;
  const numel = 4 * 2 * 2;
  const schedulers = [...SAMPLERS.map((name) => createScheduler(name, SD15, steps)), new DdimScheduler(SD15, steps, { eta: 1 })];
  for (const s of schedulers) {
    let draws = 0;
    const counting = { randn: (n: number) => (draws++, new TorchGenerator(draws).randn(n)) };
    let x = new TorchGenerator(1).randn(numel);
    for (let i = 0; i < steps; i++) x = s.step(new Float32Array(numel).fill(0.1), i, x, counting).prevSample;
    const label = `${s.sampler}${s instanceof DdimScheduler && s.stepNoise ? ' eta 1' : ''}`;
    // Euler a draws on every step; LCM on all but the last (the plan holds one spare); the others never.
    const expected = s.sampler === 'euler_a' || (s.sampler === 'ddim' && s.stepNoise) ? steps : s.sampler === 'lcm' ? steps - 1 : 0;
    assert.equal(draws, expected, label);
    assert.equal(s.stepNoise, expected > 0, label);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpec, SpecError } from './spec.js';
import { expandSweep } from './expand.js';

const base = { prompts: ['a fox'], seeds: { count: 2 }, backend: 'onnx', params: { width: 64, height: 64, steps: 4 } };

test('onnx sweeps default to the built-in tiny model; every pixel-changing param is in the renderKey', () => {
  const jobs = expandSweep(parseSpec(base), 100);
  assert.deepEqual(jobs.map((j) => [j.backend, j.model]), [['onnx', 'nightshift-tiny-sd'], ['onnx', 'nightshift-tiny-sd']]);
  const key = (params: Record<string, unknown>) => expandSweep(parseSpec({ ...base, params: { ...base.params, ...params } }), 100)[0]!.renderKey;
  const plain = key({});
  const changed = [{ sampler: 'euler_a' }, { negative_prompt: 'blurry' }, { guidance: 3 }, { init: 'images/x.png' }, { init: 'images/x.png', strength: 0.5 }, { steps: 5 }].map(key);
  assert.equal(new Set([plain, ...changed]).size, 1 + changed.length);
});

test('params.sampler and a params.sampler axis are checked for onnx sweeps, listing the valid samplers', () => {
  for (const bad of [{ ...base, params: { ...base.params, sampler: 'heun' } }, { ...base, axes: { 'params.sampler': ['euler', 'Euler a'] } }]) {
    assert.throws(
      () => parseSpec(bad),
      (e: unknown) => e instanceof SpecError && /unknown sampler .*valid samplers: euler, euler_a, ddim, dpmpp_2m, dpmpp_2m_karras, lcm/.test(e.message),
    );
  }
  assert.equal(parseSpec({ ...base, axes: { 'params.sampler': ['euler', 'lcm'] } }).backend, 'onnx');
  // exec generators name their own samplers.
  assert.equal(parseSpec({ ...base, backend: 'exec', params: { ...base.params, sampler: 'Heun' } }).backend, 'exec');
});

test('params.batch is an integer 1…8, for onnx sweeps only, and is in the renderKey like every param', () => {
  for (const [batch, why] of [[0, /params\.batch: must be at least 1/], [9, /params\.batch: must be at most 8/], [2.5, /params\.batch: must be an integer/], ['4', /params\.batch: must be a number/]] as const) {
    assert.throws(
      () => parseSpec({ ...base, params: { ...base.params, batch } }),
      (e: unknown) => e instanceof SpecError && why.test(e.message),
      `batch ${JSON.stringify(batch)}`,
    );
  }
  assert.throws(() => expandSweep(parseSpec({ ...base, axes: { 'params.batch': [2, 12] } }), 100), (e: unknown) => e instanceof SpecError && /params\.batch: must be at most 8/.test(e.message));
  for (const bad of [{ ...base, backend: 'procedural', params: { ...base.params, batch: 2 } }, { ...base, backend: 'exec', axes: { 'params.batch': [2] } }]) {
    assert.throws(() => parseSpec(bad), (e: unknown) => e instanceof SpecError && /batch: only the onnx backend renders batches/.test(e.message));
  }
  const jobs = expandSweep(parseSpec({ ...base, params: { ...base.params, batch: 4 } }), 100);
  assert.deepEqual(jobs.map((j) => j.params.batch), [4, 4]);
  const plain = expandSweep(parseSpec(base), 100);
  assert.equal(plain[0]!.params.batch, undefined, 'no default: old specs keep their render keys');
  assert.notEqual(jobs[0]!.renderKey, plain[0]!.renderKey);
});

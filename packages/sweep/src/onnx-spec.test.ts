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

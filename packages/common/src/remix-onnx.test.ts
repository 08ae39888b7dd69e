import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatA1111Parameters } from './a1111.js';
import { remixFromParameters } from './remix-a1111.js';

// What the gpu-node writes for an onnx render (worker.ts parametersText with the backend's infotext).
const onnxText = (sampler: string) =>
  formatA1111Parameters({
    prompt: 'a fox',
    negativePrompt: 'blurry, low quality',
    seed: 1,
    width: 64,
    height: 64,
    steps: 8,
    guidance: 5,
    sampler,
    modelHash: '0123456789',
    model: 'nightshift-tiny-sd',
    backend: 'onnx',
    extra: { init: 'images/abc.png', strength: 0.3 },
  });

test('an onnx render remixes to its own params: negative prompt, sampler by our name, no model hash', () => {
  const r = remixFromParameters(onnxText('Euler a'), { width: 1, height: 1 });
  assert.deepEqual(r?.spec, {
    prompts: ['a fox'],
    seeds: [1],
    params: { width: 64, height: 64, steps: 8, guidance: 5, init: 'images/abc.png', strength: 0.3, sampler: 'euler_a', negative_prompt: 'blurry, low quality' },
    backend: 'onnx',
    model: 'nightshift-tiny-sd',
  });
  assert.equal((remixFromParameters(onnxText('DPM++ 2M Karras'), { width: 1, height: 1 })?.spec.params as Record<string, unknown>).sampler, 'dpmpp_2m_karras');
});

/** The node's half of an image's provenance: versions gathered here, the model hash a job names preferred to the backend's. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';
import { jobProvenance, softwareOf } from './provenance.js';
import { ProceduralBackend } from './backends/procedural.js';
import { providerDevice } from './backends/onnx-provider.js';

test('GPU and driver from nvidia-smi, versions of what renders; none of it about the node or the moment', () => {
  const sw = softwareOf({ names: ['NVIDIA H200', 'NVIDIA H200'], driver: '550.54.15', select: [] });
  assert.equal(sw.gpu, '2× NVIDIA H200');
  assert.equal(sw.driver, '550.54.15');
  assert.deepEqual(Object.keys(sw.versions).sort(), ['nightshift', 'node', 'onnxruntime-node', 'sharp', 'vips']);
  assert.deepEqual(softwareOf(undefined), { ...sw, gpu: null, driver: null });
});

test("the registry model's hash when the job names one, else the backend's, else null", () => {
  const sw = softwareOf(undefined);
  const job = { backend: 'onnx', model: 'tiny', modelHash: 'f'.repeat(64) };
  assert.equal(jobProvenance(sw, job, 'tiny', 'abcdef0123', 'gpu').modelHash, 'f'.repeat(64));
  assert.equal(jobProvenance(sw, { ...job, modelHash: '' }, 'tiny', 'abcdef0123', 'gpu').modelHash, 'abcdef0123');
  assert.equal(jobProvenance(sw, { ...job, modelHash: '' }, 'tiny', undefined, 'gpu').modelHash, null);
});

test('the GPU and driver only where the render ran on the GPU, or the backend does not say (an exec generator)', () => {
  const sw = softwareOf({ names: ['NVIDIA H200'], driver: '550.54.15', select: [] });
  const job = { backend: 'onnx', model: 'tiny', modelHash: '' };
  const where = (device: 'cpu' | 'gpu' | undefined) => {
    const p = jobProvenance(sw, job, 'tiny', undefined, device);
    return [p.gpu, p.driver];
  };
  assert.deepEqual(where('gpu'), ['NVIDIA H200', '550.54.15']);
  assert.deepEqual(where(undefined), ['NVIDIA H200', '550.54.15']);
  assert.deepEqual(where('cpu'), [null, null]);
  assert.deepEqual(jobProvenance(sw, job, 'tiny', undefined, 'cpu').versions, sw.versions, 'the versions stay');
});

test('the procedural painter says it ran on the CPU; an onnx provider other than the CPU means the GPU', async () => {
  const png = await new ProceduralBackend().render(
    { jobId: 'j', renderKey: 'k', kind: 'render', prompt: 'a red circle', seed: 1, model: PROCEDURAL_MODEL, params: { width: 64, height: 64, steps: 1 } },
    () => {},
    new AbortController().signal,
  );
  assert.equal(png.device, 'cpu');
  const p = jobProvenance(softwareOf({ names: ['NVIDIA H200'], driver: '550.54.15', select: [] }), { backend: 'procedural', model: PROCEDURAL_MODEL, modelHash: '' }, PROCEDURAL_MODEL, undefined, png.device);
  assert.deepEqual([p.gpu, p.driver], [null, null], 'procedural provenance names no GPU');
  assert.deepEqual(['cpu', 'cuda', 'tensorrt', 'dml'].map(providerDevice), ['cpu', 'gpu', 'gpu', 'gpu']);
});

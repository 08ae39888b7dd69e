/** The node's half of an image's provenance: versions gathered here, the model hash a job names preferred to the backend's. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jobProvenance, softwareOf } from './provenance.js';

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
  assert.equal(jobProvenance(sw, job, 'tiny', 'abcdef0123').modelHash, 'f'.repeat(64));
  assert.equal(jobProvenance(sw, { ...job, modelHash: '' }, 'tiny', 'abcdef0123').modelHash, 'abcdef0123');
  assert.equal(jobProvenance(sw, { ...job, modelHash: '' }, 'tiny', undefined).modelHash, null);
});

/** The provenance chunk: an iTXt named `nightshift` beside `parameters`, stable JSON, read back. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { addPngTextChunk, readPngTextChunks } from './png-text.js';
import { addProvenanceChunk, formatProvenance, readProvenance, type Provenance } from './provenance.js';

const P: Provenance = {
  backend: 'onnx',
  model: 'nightshift-tiny-sd',
  modelHash: 'ab'.repeat(32),
  gpu: 'NVIDIA H200',
  driver: '550.54.15',
  versions: { sharp: '0.35.5', node: '20.19.0', 'onnxruntime-node': '1.30.0' },
};

test('an iTXt chunk named nightshift beside parameters, read back as written', async () => {
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#123' } }).png().toBuffer();
  const tagged = addPngTextChunk(addProvenanceChunk(png, P), 'parameters', 'a castle\nSteps: 4, Seed: 1, Size: 8x8');
  const iTXt = tagged.indexOf('iTXtnightshift\0', 0, 'latin1');
  assert.ok(iTXt > 0, 'the chunk is iTXt even though its JSON is ASCII');
  assert.deepEqual(Object.keys(readPngTextChunks(tagged)).sort(), ['nightshift', 'parameters']);
  assert.deepEqual(readProvenance(tagged), P);
  // Re-tagging replaces, never duplicates.
  const again = addProvenanceChunk(tagged, { ...P, gpu: null });
  assert.equal(again.toString('latin1').split('iTXtnightshift').length, 2);
  assert.equal(readProvenance(again)?.gpu, null);
});

test('equal provenance is equal bytes, whatever order the versions were gathered in', () => {
  const shuffled = { ...P, versions: { node: '20.19.0', 'onnxruntime-node': '1.30.0', sharp: '0.35.5' } };
  assert.equal(formatProvenance(shuffled), formatProvenance(P));
  assert.match(formatProvenance(P), /^\{"format":"nightshift\.provenance\/1","backend":"onnx",/);
});

test('a PNG without it, or with something else under the name, has no provenance', async () => {
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } }).png().toBuffer();
  assert.equal(readProvenance(png), undefined);
  assert.equal(readProvenance(addPngTextChunk(png, 'nightshift', 'not json')), undefined);
  assert.equal(readProvenance(addPngTextChunk(png, 'nightshift', '{"format":"other"}')), undefined);
});

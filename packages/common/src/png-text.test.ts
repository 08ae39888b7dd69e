import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { addPngTextChunk, pngChunk, readPngTextChunks, crc32, crc32Fallback } from './png-text.js';

async function samplePng(): Promise<Buffer> {
  return sharp({ create: { width: 16, height: 12, channels: 3, background: { r: 200, g: 10, b: 10 } } })
    .png()
    .toBuffer();
}

test('crc32 matches the table fallback and the PNG reference value', () => {
  const data = Buffer.from('IEND', 'latin1');
  assert.equal(crc32(data), 0xae426082); // IEND's CRC, fixed by the spec
  assert.equal(crc32Fallback(data), 0xae426082);
  const big = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff));
  assert.equal(crc32Fallback(big), crc32(big));
});

test('tEXt round trip, right after IHDR, and sharp still decodes', async () => {
  const png = await samplePng();
  const text = 'a red circle, bokeh\nSteps: 50, Seed: 7, Size: 16x12';
  const out = addPngTextChunk(png, 'parameters', text);
  assert.equal(out.toString('latin1', 33 + 4, 33 + 8), 'tEXt'); // 8 sig + 25 IHDR
  assert.deepEqual(readPngTextChunks(out), { parameters: text });

  const meta = await sharp(out).metadata();
  assert.equal(meta.width, 16);
  assert.equal(meta.height, 12);
  assert.deepEqual(meta.comments, [{ keyword: 'parameters', text }]);
  const { data } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
  const { data: orig } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.ok(data.equals(orig));
});

test('re-adding the same keyword replaces it; other keywords are kept', async () => {
  const png = await samplePng();
  let out = addPngTextChunk(png, 'parameters', 'one');
  out = addPngTextChunk(out, 'Software', 'nightshift');
  out = addPngTextChunk(out, 'parameters', 'two');
  assert.deepEqual(readPngTextChunks(out), { parameters: 'two', Software: 'nightshift' });
  assert.equal(addPngTextChunk(out, 'parameters', 'two').length, out.length);
});

test('latin-1 non-ASCII stays in tEXt', async () => {
  const out = addPngTextChunk(await samplePng(), 'parameters', 'crème brûlée, 5×5');
  assert.equal(out.toString('latin1', 37, 41), 'tEXt');
  assert.equal(readPngTextChunks(out).parameters, 'crème brûlée, 5×5');
});

test('unicode prompt survives via iTXt', async () => {
  const text = '一只红色的圆 🌸 — “quoted”\nSteps: 20';
  const out = addPngTextChunk(await samplePng(), 'parameters', text);
  assert.equal(out.toString('latin1', 37, 41), 'iTXt');
  assert.equal(readPngTextChunks(out).parameters, text);
  const meta = await sharp(out).metadata();
  assert.equal(meta.width, 16);
  assert.deepEqual(meta.comments, [{ keyword: 'parameters', text }]);
});

test('reads compressed zTXt and iTXt written by others', async () => {
  const png = await samplePng();
  const z = pngChunk('zTXt', Buffer.concat([Buffer.from('Comment\0\0'), zlib.deflateSync(Buffer.from('zipped', 'latin1'))]));
  const i = pngChunk('iTXt', Buffer.concat([Buffer.from('Title\0\x01\x00en\0Titel\0'), zlib.deflateSync(Buffer.from('ünï ✓'))]));
  const spliced = Buffer.concat([png.subarray(0, 33), z, i, png.subarray(33)]);
  assert.deepEqual(readPngTextChunks(spliced), { Comment: 'zipped', Title: 'ünï ✓' });
});

test('bad input throws', async () => {
  const png = await samplePng();
  assert.throws(() => addPngTextChunk(Buffer.from('not a png at all'), 'parameters', 'x'), /signature/);
  assert.throws(() => readPngTextChunks(Buffer.from('GIF89a.........')), /signature/);
  assert.throws(() => addPngTextChunk(png, '', 'x'), /keyword/);
  assert.throws(() => addPngTextChunk(png, 'k'.repeat(80), 'x'), /keyword/);
  assert.throws(() => addPngTextChunk(png, 'a\0b', 'x'), /keyword/);
  assert.throws(() => addPngTextChunk(png, 'ключ', 'x'), /keyword/);
  assert.throws(() => addPngTextChunk(png, ' lead', 'x'), /keyword/);
  assert.throws(() => addPngTextChunk(png, 'parameters', 'nul\0inside'), /NUL/);
  assert.throws(() => addPngTextChunk(png.subarray(0, png.length - 12), 'parameters', 'x'), /IEND/);
  assert.ok(addPngTextChunk(png, 'k'.repeat(79), ''));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { A1111_FIELDS, PARAM_KEY } from '@nightshift/sweep';
import { formatA1111Parameters, KEY_RE, parseA1111Parameters, STANDARD_KEYS } from './a1111.js';

test('formats in A1111 order', () => {
  const text = formatA1111Parameters({
    prompt: 'a red circle',
    seed: 7,
    width: 256,
    height: 256,
    steps: 50,
    guidance: 7.5,
    sampler: 'Euler a',
    model: 'procedural-v1',
    backend: 'procedural',
    extra: { 'Render key': 'abc123', Tiling: false, Skipped: undefined },
  });
  assert.equal(
    text,
    'a red circle\nSteps: 50, Sampler: Euler a, CFG scale: 7.5, Seed: 7, Size: 256x256, Model: procedural-v1, Backend: procedural, Render key: abc123, Tiling: false',
  );
});

test('minimal: no negative line, optional keys omitted', () => {
  const text = formatA1111Parameters({ prompt: 'x', seed: 0, width: 64, height: 128, steps: 1 });
  assert.equal(text, 'x\nSteps: 1, Seed: 0, Size: 64x128');
  assert.deepEqual(parseA1111Parameters(text), {
    prompt: 'x',
    negativePrompt: '',
    params: { Steps: '1', Seed: '0', Size: '64x128' },
  });
});

test('round trip with commas, colons, quotes and newlines in values', () => {
  const input = {
    prompt: 'a beautiful orchid, trending on artstation\nsecond line: with colon',
    negativePrompt: 'blurry, lowres\nugly',
    seed: 4294967295,
    width: 512,
    height: 768,
    steps: 30,
    guidance: 7,
    model: 'my model, v2: final',
    backend: 'exec',
    extra: {
      Note: 'he said "hi", then left',
      Quoted: '"starts with quote',
      Spaced: '  padded  ',
      Multi: 'a\nb',
      Unicode: 'オーキッド, 🌸',
    },
  };
  const parsed = parseA1111Parameters(formatA1111Parameters(input));
  assert.equal(parsed.prompt, input.prompt);
  assert.equal(parsed.negativePrompt, input.negativePrompt);
  assert.deepEqual(parsed.params, {
    Steps: '30',
    'CFG scale': '7',
    Seed: '4294967295',
    Size: '512x768',
    Model: 'my model, v2: final',
    Backend: 'exec',
    Note: 'he said "hi", then left',
    Quoted: '"starts with quote',
    Spaced: '  padded  ',
    Multi: 'a\nb',
    Unicode: 'オーキッド, 🌸',
  });
});

test('parses a real A1111 infotext', () => {
  const text =
    'masterpiece, a cat\nNegative prompt: blurry, lowres\n' +
    'Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3050471427, Size: 512x768, ' +
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.9.4';
  const p = parseA1111Parameters(text);
  assert.equal(p.prompt, 'masterpiece, a cat');
  assert.equal(p.negativePrompt, 'blurry, lowres');
  assert.equal(p.params['Sampler'], 'DPM++ 2M');
  assert.equal(p.params['Schedule type'], 'Karras');
  assert.equal(p.params['Lora hashes'], 'add_detail: 7c6bad76eb54');
  assert.equal(p.params['Version'], 'v1.9.4');
  assert.equal(p.params['Size'], '512x768');
});

test('text without a parameter line is all prompt', () => {
  assert.deepEqual(parseA1111Parameters('just a prompt\nmore: text'), {
    prompt: 'just a prompt\nmore: text',
    negativePrompt: '',
    params: {},
  });
});

test('empty prompt still parses', () => {
  const text = formatA1111Parameters({ prompt: '', seed: 1, width: 64, height: 64, steps: 2 });
  assert.deepEqual(parseA1111Parameters(text).params, { Steps: '2', Seed: '1', Size: '64x64' });
  assert.equal(parseA1111Parameters(text).prompt, '');
});

test('rejects keys the parser could not read back', () => {
  const base = { prompt: 'p', seed: 1, width: 64, height: 64, steps: 1 };
  assert.throws(() => formatA1111Parameters({ ...base, extra: { 'a,b': 1 } }), /not parseable/);
  assert.throws(() => formatA1111Parameters({ ...base, extra: { 'a:b': 1 } }), /not parseable/);
  assert.throws(() => formatA1111Parameters({ ...base, extra: { x: 1 } }), /not parseable/);
  assert.throws(() => formatA1111Parameters({ ...base, extra: { Seed: 2 } }), /dedicated/);
  assert.throws(() => formatA1111Parameters({ ...base, guidance: Number.NaN }), /finite/);
});

test('Model hash goes before Model, as A1111 writes it, and parses back', () => {
  const text = formatA1111Parameters({ prompt: 'p', seed: 1, width: 64, height: 64, steps: 4, sampler: 'Euler a', guidance: 7, modelHash: '0123456789', model: 'nightshift-tiny-sd' });
  assert.equal(text, 'p\nSteps: 4, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64, Model hash: 0123456789, Model: nightshift-tiny-sd');
  assert.equal(parseA1111Parameters(text).params['Model hash'], '0123456789');
  assert.throws(() => formatA1111Parameters({ prompt: 'p', seed: 1, width: 64, height: 64, steps: 4, extra: { 'Model hash': 'x' } }), /dedicated field/);
});

test('the spec accepts exactly the param names this writer can carry (the two rules are one)', () => {
  assert.equal(PARAM_KEY.source, KEY_RE.source);
  assert.deepEqual([...A1111_FIELDS].sort(), [...STANDARD_KEYS].sort());
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { applyRemixOptions, parseAxis } from './remix.js';

test('--axis name=a,b: repeatable; params axes take numbers', () => {
  const axes = parseAxis('params.steps=20, 40', parseAxis('style=watercolor,ink wash'));
  assert.deepEqual(axes, [
    ['style', ['watercolor', 'ink wash']],
    ['params.steps', [20, 40]],
  ]);
  assert.throws(() => parseAxis('style'), InvalidArgumentError);
  assert.throws(() => parseAxis('style=,'), /at least one value/);
  assert.throws(() => parseAxis('1st=a'), InvalidArgumentError);
});

test('--seeds N starts at the image\'s seed; axes are added to the spec\'s', () => {
  const spec = { prompts: ['a cat'], seeds: [965400086], params: { width: 512 }, axes: { mood: ['calm'] } };
  assert.deepEqual(applyRemixOptions(spec, { seeds: 20, axis: [['style', ['ink']]] }), {
    prompts: ['a cat'],
    seeds: { start: 965400086, count: 20 },
    params: { width: 512 },
    axes: { mood: ['calm'], style: ['ink'] },
  });
  assert.deepEqual(applyRemixOptions(spec, { axis: [] }), spec, 'unchanged without options');
});

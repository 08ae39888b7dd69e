import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { parseSpec, SpecError } from './spec.js';
import { canonicalJson, renderKey, renderKeyWithParams } from './canonical.js';
import { applyTemplate, expandSweep } from './expand.js';
import { countJobs } from './limits.js';

const base = {
  prompts: ['a red circle', 'a blue square'],
  axes: { style: ['', 'watercolor', 'by Greg Rutkowski'] },
  seeds: { start: 7, count: 4 },
};

test('expands prompts × axes × seeds in a stable order', () => {
  const spec = parseSpec(base);
  const jobs = expandSweep(spec, 1000);
  assert.equal(jobs.length, 24);
  assert.equal(countJobs(spec), 24);
  assert.deepEqual(
    jobs.slice(0, 5).map((j) => [j.prompt, j.seed]),
    [
      ['a red circle', 7],
      ['a red circle', 8],
      ['a red circle', 9],
      ['a red circle', 10],
      ['a red circle, watercolor', 7],
    ],
  );
  assert.equal(jobs[23]!.prompt, 'a blue square, by Greg Rutkowski');
  assert.equal(new Set(jobs.map((j) => j.renderKey)).size, 24);
  // Determinism: the same spec gives the same keys, in the same order.
  assert.deepEqual(expandSweep(parseSpec(base), 1000).map((j) => j.renderKey), jobs.map((j) => j.renderKey));
});

test('template fills placeholders and drops separators left by empty values', () => {
  const spec = parseSpec({ ...base, template: '{prompt}, {style}' });
  assert.equal(applyTemplate(spec, 'an orchid', { style: '' }), 'an orchid');
  assert.equal(applyTemplate(spec, 'an orchid', { style: 'watercolor' }), 'an orchid, watercolor');
});

test('zip pairs axes instead of crossing them', () => {
  const spec = parseSpec({
    prompts: ['x'],
    axes: { artist: ['a', 'b'], medium: ['oil', 'ink'], mood: ['calm', 'wild'] },
    zip: ['artist', 'medium'],
    seeds: [1],
  });
  const jobs = expandSweep(spec, 100);
  assert.deepEqual(
    jobs.map((j) => j.prompt),
    ['x, a, oil, calm', 'x, a, oil, wild', 'x, b, ink, calm', 'x, b, ink, wild'],
  );
});

test('params axes change params, not the prompt, and are validated', () => {
  const spec = parseSpec({ prompts: ['x'], axes: { 'params.steps': [20, 40] }, seeds: [1] });
  const jobs = expandSweep(spec, 100);
  assert.deepEqual(jobs.map((j) => [j.prompt, j.params.steps]), [['x', 20], ['x', 40]]);
  assert.notEqual(jobs[0]!.renderKey, jobs[1]!.renderKey);
  const bad = parseSpec({ prompts: ['x'], axes: { 'params.width': [100] }, seeds: [1] });
  assert.throws(() => expandSweep(bad, 100), /params.width: must be a multiple of 8/);
});

test('renderKey ignores param key order but not values', () => {
  const a = expandSweep(parseSpec({ prompts: ['x'], seeds: [1], params: { width: 256, height: 128 } }), 10)[0]!;
  const b = expandSweep(parseSpec({ prompts: ['x'], seeds: [1], params: { height: 128, width: 256 } }), 10)[0]!;
  const c = expandSweep(parseSpec({ prompts: ['x'], seeds: [1], params: { height: 128, width: 128 } }), 10)[0]!;
  assert.equal(a.renderKey, b.renderKey);
  assert.notEqual(a.renderKey, c.renderKey);
});

test('rejects invalid specs with field paths', () => {
  const cases: [unknown, RegExp][] = [
    [{ seeds: { count: 1 } }, /prompts/],
    [{ prompts: [], seeds: { count: 1 } }, /prompts: needs at least one prompt/],
    [{ prompts: ['x'], seeds: { count: 0 } }, /seeds/],
    [{ prompts: ['x'], seeds: { count: -3 } }, /seeds/],
    [{ prompts: ['x'], seeds: { count: 1 }, params: { width: 'big' } }, /params.width: must be a number/],
    [{ prompts: ['x'], seeds: { count: 1 }, backend: 'dalle' }, /backend must be one of/],
    [{ prompts: ['x'], seeds: { count: 1 }, template: '{prompt} {nope}' }, /unknown placeholder \{nope\}/],
    [{ prompts: ['x'], seeds: { count: 1 }, colour: 'red' }, /colour/],
  ];
  for (const [input, re] of cases) {
    assert.throws(() => parseSpec(input), (e: unknown) => e instanceof SpecError && re.test(e.message), JSON.stringify(input));
  }
});

test('refuses sweeps over the job limit before expanding them', () => {
  const spec = parseSpec({ prompts: ['a', 'b'], seeds: { count: 100_000 } });
  assert.throws(() => expandSweep(spec, 1000), /expands to 200000 jobs, more than the maximum of 1000/);
});

test('renderKeyWithParams gives renderKey’s bytes for any identity', () => {
  const prompts = ['x', 'a "quoted" prompt, with \\ and \n', 'ünïcödé 🌙 <b>', ''];
  const params = [{}, { width: 512, height: 512, steps: 20 }, { sampler: 'euler_a', guidance: 7.5, negative_prompt: 'blur', nested: { b: 1, a: [2, { d: null, c: true }] } }];
  for (const prompt of prompts) {
    for (const p of params) {
      for (const seed of [0, 1, 4294967295, -3]) {
        const id = { backend: 'onnx', model: 'nightshift-tiny-sd@ab12', prompt, seed };
        // The definition (docs/design.md): sha256 of the canonical JSON of the five, as one array.
        const reference = createHash('sha256').update(canonicalJson([id.backend, id.model, id.prompt, id.seed, p])).digest('hex');
        assert.equal(renderKeyWithParams(id, canonicalJson(p)), reference, `${prompt} ${seed}`);
        assert.equal(renderKey({ ...id, params: p }), reference);
      }
    }
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpec, SpecError } from './spec.js';
import { expandSweep } from './expand.js';
import { checkExpansion, DEFAULT_EXPANSION_LIMITS, promptBound } from './limits.js';

const detailsOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SpecError, String(err));
    return err.details;
  }
  assert.fail('expected a SpecError');
};

/** The expansion bomb: a 2 KB spec whose template repeats {prompt} 240 times over 1,000 axis values. */
const bomb = () =>
  parseSpec({
    prompts: ['x'.repeat(1_990)],
    template: '{prompt}'.repeat(240),
    axes: { style: Array.from({ length: 1_000 }, (_, i) => `s${i}`) },
    seeds: { count: 1 },
  });

test('a template that repeats {prompt} is refused before any job is built, naming the template', () => {
  const details = detailsOf(() => expandSweep(bomb(), 100_000));
  assert.equal(details[0]!.path, 'template');
  assert.match(details[0]!.message, /expands to up to 477600 characters .* more than the maximum of 4000/);
});

test('without a template, the prompt plus its longest axis values is bounded, naming the prompt', () => {
  const spec = parseSpec({ prompts: ['ok', 'y'.repeat(1_500)], axes: { a: ['z'.repeat(1_500)], b: ['w'.repeat(1_500), 'v'] }, seeds: { count: 1 } });
  assert.equal(promptBound(spec, spec.prompts[1]!), 1_500 + 2 + 1_500 + 2 + 1_500);
  const details = detailsOf(() => checkExpansion(spec, DEFAULT_EXPANSION_LIMITS));
  assert.equal(details[0]!.path, 'prompts.1');
});

test('the bound is never below the real expanded prompt', () => {
  const spec = parseSpec({ prompts: ['a cat', 'a dog'], template: '{prompt} in {style}, {prompt}', axes: { style: ['ink', 'watercolor', ''], 'params.steps': [4, 8] }, seeds: { count: 2 } });
  for (const job of expandSweep(spec, 100)) assert.ok(job.prompt.length <= promptBound(spec, job.prompt.startsWith('a cat') ? 'a cat' : 'a dog'));
});

test('all prompts together are bounded: many long prompts × seeds are refused as a whole', () => {
  const spec = parseSpec({ prompts: Array.from({ length: 1_000 }, (_, i) => `${i} ${'p'.repeat(1_900)}`), seeds: { count: 100 } });
  const details = detailsOf(() => checkExpansion(spec, DEFAULT_EXPANSION_LIMITS));
  assert.equal(details[0]!.path, '');
  assert.match(details[0]!.message, /characters in all, more than the maximum of 50000000/);
  // The same sweep with short prompts passes.
  assert.doesNotThrow(() => checkExpansion(parseSpec({ prompts: ['a', 'b'], seeds: { count: 100 } }), DEFAULT_EXPANSION_LIMITS));
});

test('limits are configurable', () => {
  const spec = parseSpec({ prompts: ['a long prompt of forty characters, roughly'], seeds: { count: 1 } });
  assert.equal(detailsOf(() => expandSweep(spec, { maxPromptChars: 10 }))[0]!.path, 'prompts.0');
  assert.equal(expandSweep(spec, { maxPromptChars: 100 }).length, 1);
});

test('param names the PNG text cannot carry are refused at submit, naming the param', () => {
  for (const bad of ['x', 'a.b', 'Sampler', ' pad']) {
    const details = detailsOf(() => parseSpec({ prompts: ['p'], seeds: { count: 1 }, params: { [bad]: 1 } }));
    assert.equal(details[0]!.path, `params.${bad}`);
  }
  assert.equal(parseSpec({ prompts: ['p'], seeds: { count: 1 }, params: { simMs: 5, negative_prompt: 'blur', 'hires fix': true } }).params.simMs, 5);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpecText, readSpecText, SpecTextError } from './spec-text.js';
import { SpecError } from './spec.js';

function refusal(text: string): SpecTextError {
  try {
    readSpecText(text);
  } catch (err) {
    assert.ok(err instanceof SpecTextError, String(err));
    return err;
  }
  throw new Error('the text was accepted');
}

test('YAML and JSON both read into the document as written, validated and counted', () => {
  const yaml = readSpecText('prompts:\n  - a red circle\naxes:\n  style: ["", watercolor]\nseeds: [1, 2]\n');
  assert.deepEqual(yaml.input, { prompts: ['a red circle'], axes: { style: ['', 'watercolor'] }, seeds: [1, 2] });
  assert.equal(yaml.jobs, 4);
  assert.equal(yaml.spec.backend, 'procedural');
  const json = readSpecText('{"prompts": ["x"], "axes": {"s": ["a", "b"]}, "seeds": [1, 2, 3]}');
  assert.equal(json.jobs, 6);
});

test('spec problems carry their field path and the line and column of the field', () => {
  const err = refusal(['name: x', 'prompts:', '  - ok', '  - ""', 'seeds:', '  count: 0', 'params:', '  width: 65', ''].join('\n'));
  assert.equal(err.problem, 'invalid');
  assert.ok(err instanceof SpecError, 'callers that know only SpecError still catch it');
  const byPath = Object.fromEntries(err.details.map((d) => [d.path, [d.line, d.column]]));
  assert.deepEqual(byPath, { 'prompts.1': [4, 5], 'seeds.count': [6, 10], 'params.width': [8, 10] });
  assert.match(err.message, /^invalid sweep spec: prompts\.1: must not be empty/);
});

test('a missing field is placed on its nearest existing parent', () => {
  const err = refusal('{"seeds": {"count": 1}}');
  const prompts = err.details.find((d) => d.path === 'prompts');
  assert.deepEqual(prompts && [prompts.line, prompts.column], [1, 1]);
});

test('syntax errors name every line, before any validation', () => {
  const err = refusal('prompts: [a\nseeds: 1\n');
  assert.equal(err.problem, 'syntax');
  assert.equal(err.details[0]!.line, 2);
  assert.equal(err.details[0]!.column, 1);
  assert.doesNotMatch(err.details[0]!.message, /\n/);
  assert.throws(() => parseSpecText('a: 1\na: 2\n'), (e) => e instanceof SpecTextError && e.problem === 'syntax' && /unique/.test(e.details[0]!.message));
});

test('empty text is its own problem; parseSpecText alone does not validate', () => {
  assert.equal(refusal('# nothing\n').problem, 'empty');
  assert.equal(refusal('').problem, 'empty');
  assert.equal(parseSpecText('').input, null);
  assert.deepEqual(parseSpecText('{"x": 1}').input, { x: 1 });
  assert.deepEqual(parseSpecText('a:\n  b: 1\n').locate('a.b'), { line: 2, column: 6 });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpec, SpecError, type SweepSpecInput } from './spec.js';
import { expandSweep } from './expand.js';
import { checkExpansion, DEFAULT_EXPANSION_LIMITS, promptBound } from './limits.js';
import { listsUsedBy, parseDynamic, wildcardLines } from './wildcards-parse.js';
import { collectWildcards, specTexts } from './wildcards-collect.js';
import type { WildcardLists } from './wildcards.js';

const detailsOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SpecError, String(err));
    return err.details;
  }
  assert.fail('expected a SpecError');
};

const lists = (o: Record<string, string[]>): WildcardLists => new Map(Object.entries(o));
const expand = (input: SweepSpecInput, l?: WildcardLists) => expandSweep(parseSpec(input), 100_000, l);
const COLORS = lists({ colors: ['red', 'green', 'blue', 'black', 'white'] });

test('plain prompts are untouched: no choices, same render keys as before (one prompt for every seed)', () => {
  const jobs = expand({ prompts: ['a cat, {not a choice}, a_b __ c\\d'], seeds: { count: 3 } });
  assert.deepEqual(new Set(jobs.map((j) => j.prompt)), new Set(['a cat, {not a choice}, a_b __ c\\d']));
});

test('{a|b|c} makes one choice per job, the same on every expansion, and varies over seeds', () => {
  const spec = { prompts: ['a {red|green|blue} car'], seeds: { count: 60 } };
  const a = expand(spec);
  const b = expand(spec);
  assert.deepEqual(a.map((j) => j.prompt), b.map((j) => j.prompt), 'deterministic');
  assert.deepEqual(a.map((j) => j.renderKey), b.map((j) => j.renderKey));
  for (const j of a) assert.match(j.prompt, /^a (red|green|blue) car$/);
  assert.equal(new Set(a.map((j) => j.prompt)).size, 3, '60 seeds see every option');
});

test("a job's choices depend on its seed and place in the grid, not on how many seeds or values the sweep has", () => {
  const small = expand({ prompts: ['x', 'a {b|c|d|e|f|g} __colors__'], axes: { style: ['oil', 'ink'] }, seeds: [5, 6] }, COLORS);
  const grown = expand({ prompts: ['x', 'a {b|c|d|e|f|g} __colors__'], axes: { style: ['oil', 'ink', 'pencil'] }, seeds: [5, 6, 7, 8] }, COLORS);
  const byKey = new Map(grown.map((j) => [`${j.prompt.split(',')[0]}|${j.seed}|${String(j.axes.style)}`, j.renderKey]));
  for (const j of small) assert.equal(byKey.get(`${j.prompt.split(',')[0]}|${j.seed}|${String(j.axes.style)}`), j.renderKey, j.prompt);
});

test('{N$$…} picks N distinct options joined by ", " (or the given separator); ranges and counts past the options', () => {
  for (const j of expand({ prompts: ['{3$$a|b|c|d|e}'], seeds: { count: 50 } })) {
    const picks = j.prompt.split(', ');
    assert.equal(picks.length, 3);
    assert.equal(new Set(picks).size, 3, j.prompt);
  }
  for (const j of expand({ prompts: ['{2$$ and $$x|y|z}'], seeds: { count: 20 } })) assert.match(j.prompt, /^[xyz] and [xyz]$/);
  const sizes = new Set(expand({ prompts: ['{1-3$$a|b|c|d}'], seeds: { count: 60 } }).map((j) => j.prompt.split(', ').length));
  assert.deepEqual([...sizes].sort(), [1, 2, 3]);
  for (const j of expand({ prompts: ['{9$$a|b}'], seeds: { count: 5 } })) assert.deepEqual(j.prompt.split(', ').sort(), ['a', 'b']);
  for (const j of expand({ prompts: ['{2$$__colors__}'], seeds: { count: 30 } }, COLORS)) {
    const picks = j.prompt.split(', ');
    assert.equal(new Set(picks).size, 2, j.prompt);
    for (const p of picks) assert.ok(COLORS.get('colors')!.includes(p), p);
  }
});

test('__name__ is one line of the list; lines may use choices and other lists', () => {
  const l = lists({ animal: ['{big|small} __pet__'], pet: ['cat', 'dog'] });
  const prompts = new Set(expand({ prompts: ['a __animal__'], seeds: { count: 80 } }, l).map((j) => j.prompt));
  assert.deepEqual([...prompts].sort(), ['a big cat', 'a big dog', 'a small cat', 'a small dog']);
});

test('nesting: braces in braces, up to four levels; deeper (braces and lists together) is refused with the place', () => {
  const ok = expand({ prompts: ['{a|{b|{c|{d|e}}}}'], seeds: { count: 40 } });
  assert.deepEqual(new Set(ok.map((j) => j.prompt)), new Set(['a', 'b', 'c', 'd', 'e']));
  const deep = detailsOf(() => expand({ prompts: ['ok', 'x {a|{b|{c|{d|{e|f}}}}}'], seeds: [1] }));
  assert.deepEqual(deep, [{ path: 'prompts.1', message: 'braces nested deeper than 4 levels (at character 14)' }]);
  // __a__ nests 4 deep (a list, a choice, a list, a list); inside a choice it is one too many.
  const l = lists({ a: ['{x|__b__}'], b: ['__c__'], c: ['z'] });
  assert.equal(expand({ prompts: ['__a__'], seeds: [1] }, l).length, 1);
  const viaLists = detailsOf(() => expand({ prompts: ['ok {u|__a__}'], seeds: [1] }, l));
  assert.deepEqual(viaLists, [{ path: 'prompts.0', message: 'choices and lists nested deeper than 4 levels (at character 3)' }]);
  const self = detailsOf(() => expand({ prompts: ['__a__'], seeds: [1] }, lists({ a: ['x __a__'] })));
  assert.deepEqual(self, [{ path: 'wildcards.a.0', message: 'the list __a__ uses itself (at character 2)' }]);
});

test('errors name the field and the character: unbalanced braces, unknown and empty lists, backwards counts', () => {
  const cases: [SweepSpecInput, WildcardLists | undefined, { path: string; message: string }][] = [
    [{ prompts: ['fine', 'a {b|c'], seeds: [1] }, undefined, { path: 'prompts.1', message: 'unbalanced "{": no "}" closes it (at character 2)' }],
    [{ prompts: ['a b|c} d'], seeds: [1] }, undefined, { path: 'prompts.0', message: 'unbalanced "}": no "{" opens it (at character 5)' }],
    [{ prompts: ['a __nope__'], seeds: [1] }, COLORS, { path: 'prompts.0', message: 'unknown wildcard list __nope__ (PUT /api/wildcards/nope creates it) (at character 2)' }],
    [{ prompts: ['__empty__'], seeds: [1] }, lists({ empty: [] }), { path: 'prompts.0', message: 'the wildcard list __empty__ has no lines (at character 0)' }],
    [{ prompts: ['{3-2$$a|b}'], seeds: [1] }, undefined, { path: 'prompts.0', message: 'choice count 3-2 runs backwards (at character 0)' }],
    [{ prompts: ['x'], template: '{prompt}, {oil|__colors__', seeds: [1] }, COLORS, { path: 'template', message: 'unbalanced "{": no "}" closes it (at character 10)' }],
    [{ prompts: ['__bad__'], seeds: [1] }, lists({ bad: ['ok', 'x {y'] }), { path: 'wildcards.bad.1', message: 'unbalanced "{": no "}" closes it (at character 2)' }],
  ];
  for (const [spec, l, want] of cases) {
    assert.deepEqual(detailsOf(() => expandSweep(parseSpec(spec), 100, l)), [want], JSON.stringify(spec));
  }
});

test('templates: {name} is a placeholder, {a|b} a choice; unknown placeholders are still refused at parse', () => {
  const jobs = expand({ prompts: ['a cat'], template: '{prompt}, {oil|ink} by __colors__ in {style}', axes: { style: ['soft'] }, seeds: { count: 20 } }, COLORS);
  for (const j of jobs) assert.match(j.prompt, /^a cat, (oil|ink) by (red|green|blue|black|white) in soft$/);
  assert.throws(() => parseSpec({ prompts: ['x'], template: '{prompt} {nope}', seeds: [1] }), /template: unknown placeholder \{nope\}/);
  assert.throws(() => parseSpec({ prompts: ['x'], template: '{prompt} {a|b', seeds: [1] }), /template: unbalanced "\{": no "\}" closes it \(at character 9\)/);
  // As before: a placeholder in literal braces is filled, the braces kept.
  assert.equal(expand({ prompts: ['x'], template: '{{prompt}}', seeds: [1] })[0]!.prompt, '{x}');
});

test('escapes: \\{ \\} \\| are literal', () => {
  assert.equal(expand({ prompts: ['a \\{b\\|c\\} {d|d}'], seeds: [1] })[0]!.prompt, 'a {b|c} d');
});

test('bounds: the longest option counts, as many times as the count; lists by their longest line', () => {
  const spec = parseSpec({ prompts: ['{a|bbbbbbbbbb} {2$$xx|yyyy|z}'], seeds: [1] });
  assert.equal(promptBound(spec, spec.prompts[0]!), 10 + 1 + 4 + 2 + 4);
  const l = lists({ long: ['a', 'b'.repeat(3_000)] });
  const big = parseSpec({ prompts: ['__long__ and __long__'], seeds: [1] });
  assert.equal(promptBound(big, big.prompts[0]!, l), 6_005);
  const details = detailsOf(() => checkExpansion(big, DEFAULT_EXPANSION_LIMITS, l));
  assert.equal(details[0]!.path, 'prompts.0');
  assert.match(details[0]!.message, /expands to up to 6005 characters/);
  // A choice of many lines from a big list is bounded by what it can really pick.
  const many = lists({ w: Array.from({ length: 10_000 }, (_, i) => `w${i}`) });
  const spec2 = parseSpec({ prompts: ['{9999$$__w__}'], seeds: [1] });
  assert.throws(() => checkExpansion(spec2, DEFAULT_EXPANSION_LIMITS, many), /prompt too long/);
  for (const j of expandSweep(parseSpec({ prompts: ['{a|bbbbbbbbbb} {2$$xx|yyyy|z}'], seeds: { count: 30 } }), 100)) assert.ok(j.prompt.length <= 21);
});

test('parsing is linear: a megabyte of braces and pipes parses in seconds, not hours (quadratic would never finish)', () => {
  const text = '{a|b} '.repeat(170_000) + '__x__ '.repeat(10_000);
  const t0 = performance.now();
  const parts = parseDynamic(text, { path: 'prompts.0', placeholders: false });
  assert.ok(parts.length > 170_000);
  assert.ok(performance.now() - t0 < 5_000, `${performance.now() - t0} ms`);
  const t1 = performance.now();
  assert.throws(() => parseDynamic('{'.repeat(500_000), { path: 'p', placeholders: false }), /nested deeper/);
  assert.throws(() => parseDynamic('_'.repeat(1_000_000) + '{', { path: 'p', placeholders: false }), /unbalanced/);
  assert.ok(performance.now() - t1 < 5_000, `${performance.now() - t1} ms`);
});

test('list files: blank lines and # comments skipped; names used; the lists a spec needs, transitively', async () => {
  assert.deepEqual(wildcardLines('# colors\r\nred\n\n  green  \n#blue\n'), ['red', 'green']);
  assert.deepEqual(listsUsedBy('a __b__ __c-d__ __e_f__ __B__ ___'), ['b', 'c-d', 'e_f']);
  assert.deepEqual(specTexts({ prompts: ['a', 3], template: 't' }), ['a', 't']);
  const store: Record<string, string[]> = { a: ['__b__ x'], b: ['{__c__|y}'], c: ['z'], unused: ['q'] };
  const asked: string[] = [];
  const got = await collectWildcards(['__a__', '__missing__'], async (n) => (asked.push(n), store[n]));
  assert.deepEqual([...got.keys()].sort(), ['a', 'b', 'c']);
  assert.deepEqual(asked.sort(), ['a', 'b', 'c', 'missing']);
});

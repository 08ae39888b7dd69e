/** expandSweepLazily: the same jobs as ever, made one at a time, with every rejection before the first. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { parseSpec, SpecError } from './spec.js';
import { expandSweep, expandSweepLazily } from './expand.js';
import { countJobs } from './limits.js';

const digest = (jobs: unknown) => createHash('sha256').update(JSON.stringify(jobs)).digest('hex');
const lists = new Map([['animal', ['fox', 'owl', 'heron']]]);
const SPECS = [
  {
    spec: { prompts: ['a red circle', 'a {tiny|huge} blue square'], axes: { style: ['', 'watercolor'], 'params.steps': [2, 3], 'params.width': [64, 128] }, zip: ['params.steps', 'params.width'], seeds: { start: 7, count: 3 }, template: '{prompt}, {style}' },
    jobs: 24,
    // Every field of every job, as the eager expansion made them before it became lazy.
    digest: '070eed093e9b4fe0d657d60df67377c4f0af3956d41c32d91e940419f7e5aa7a',
  },
  { spec: { prompts: ['a __animal__ at dusk'], axes: { 'params.cfg': [1, 7.5] }, seeds: [1, 5, 9] }, jobs: 6, digest: '8f4fb14b667939911092e960b78ba4a68ac84a64e69bde4d4b8ae41249b42d22' },
];

test('the lazy expansion gives exactly the jobs the eager one always gave, and says how many first', () => {
  for (const s of SPECS) {
    const spec = parseSpec(s.spec);
    const { total, jobs } = expandSweepLazily(spec, 1000, lists);
    assert.equal(total, s.jobs);
    assert.equal(total, countJobs(spec));
    assert.equal(digest([...jobs]), s.digest);
    assert.equal(digest(expandSweep(spec, 1000, lists)), s.digest);
  }
});

test('jobs are made as they are taken, not all at once', () => {
  const spec = parseSpec({ prompts: Array.from({ length: 1_000 }, (_, i) => `prompt ${i}`), seeds: { count: 1_000 } });
  const { total, jobs } = expandSweepLazily(spec, 1_000_000);
  assert.equal(total, 1_000_000);
  assert.ok(!Array.isArray(jobs));
  const it = jobs[Symbol.iterator]();
  const first = it.next();
  assert.equal(first.done, false);
  assert.deepEqual(first.done ? undefined : [first.value.index, first.value.prompt, first.value.seed], [0, 'prompt 0', 0]);
});

test('every rejection comes at the call, before any job is made', () => {
  const tooMany = parseSpec({ prompts: ['a'], seeds: { count: 11 } });
  assert.throws(() => expandSweepLazily(tooMany, 10), (e: unknown) => e instanceof SpecError && e.message.startsWith('sweep too large'));
  // The second prompt's combination is as bad as the first's: found without iterating.
  const badAxis = parseSpec({ prompts: ['a', 'b'], axes: { 'params.steps': [4, -1] }, seeds: { count: 2 } });
  assert.throws(() => expandSweepLazily(badAxis, 100), (e: unknown) => e instanceof SpecError && e.details.some((i) => i.path === 'params.steps'));
  const unknownList = parseSpec({ prompts: ['a __nope__'], seeds: { count: 1 } });
  assert.throws(() => expandSweepLazily(unknownList, 100), SpecError);
});

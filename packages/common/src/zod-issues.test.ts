import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { fieldIssues, formatIssues } from './zod-issues.js';

const Schema = z.object({ width: z.number().int(), list: z.array(z.string()) });
const issues = (v: unknown) => {
  const r = Schema.safeParse(v);
  assert.equal(r.success, false);
  return r.error!.issues;
};

test('fieldIssues: dotted paths (array indexes too), under an optional prefix', () => {
  const bad = issues({ width: 1.5, list: ['a', 2] });
  assert.deepEqual(
    fieldIssues(bad).map((i) => i.path),
    ['width', 'list.1'],
  );
  assert.deepEqual(
    fieldIssues(bad, 'params').map((i) => i.path),
    ['params.width', 'params.list.1'],
  );
  assert.equal(fieldIssues(issues(null))[0]!.path, '', 'the value itself');
  assert.equal(fieldIssues(issues(null), 'generators.0')[0]!.path, 'generators.0');
});

test('formatIssues: one line, the value itself named (root)', () => {
  assert.match(formatIssues(issues({ width: 'x', list: [] })), /^width: [^;]+$/);
  assert.match(formatIssues(issues({ list: [1] }), 'p'), /^p\.width: .+; p\.list\.0: .+$/);
  assert.match(formatIssues(issues(7)), /^\(root\): /);
});

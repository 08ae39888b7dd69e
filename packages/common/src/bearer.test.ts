import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bearerMatches, bearerToken } from './bearer.js';

test('bearerToken: the token after the Bearer scheme, or none', () => {
  assert.equal(bearerToken('Bearer tok'), 'tok');
  assert.equal(bearerToken('bearer   tok '), 'tok');
  assert.equal(bearerToken('tok'), undefined);
  assert.equal(bearerToken('Basic dXNlcg=='), undefined);
  assert.equal(bearerToken('Bearer '), undefined);
  assert.equal(bearerToken(undefined), undefined);
});

test('bearerMatches: the same token only, with the scheme', () => {
  assert.ok(bearerMatches('tok', 'Bearer tok'));
  assert.ok(bearerMatches('tok', 'bearer  tok'));
  assert.ok(!bearerMatches('tok', 'Bearer tok2'));
  assert.ok(!bearerMatches('tok', 'Bearer to'));
  assert.ok(!bearerMatches('tok', 'tok'));
  assert.ok(!bearerMatches('tok', undefined));
});

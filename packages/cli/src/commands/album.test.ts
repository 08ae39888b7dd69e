import { test } from 'node:test';
import assert from 'node:assert/strict';
import { albumRequest } from './album.js';

test('album SWEEP OUT, --favorites OUT, --query "text" OUT', () => {
  assert.deepEqual(albumRequest('sw_1', 'night/', { k: 50 }), { out: 'night', selection: { sweep: 'sw_1' }, zip: false });
  assert.deepEqual(albumRequest('keep', undefined, { k: 50, favorites: true, zip: true }), { out: 'keep.zip', selection: { favorites: true }, zip: true });
  assert.deepEqual(albumRequest('sw_1', 'favs', { k: 50, favorites: true }).selection, { favorites: true, sweep: 'sw_1' });
  assert.deepEqual(albumRequest('circles', undefined, { k: 20, query: ' red circle ' }).selection, { query: 'red circle', k: 20 });
  assert.equal(albumRequest('a.zip', undefined, { k: 1, favorites: true, zip: true }).out, 'a.zip');
});

test('usage errors name what is missing', () => {
  assert.throws(() => albumRequest('out', undefined, { k: 50 }), /--favorites, a sweep id, or --query/);
  assert.throws(() => albumRequest('out', undefined, { k: 50, favorites: true, query: 'x' }), /not both/);
  assert.throws(() => albumRequest('out', undefined, { k: 50, query: '  ' }), /needs some text/);
});

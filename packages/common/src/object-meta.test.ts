import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imageIdsOf, imageObjectMeta, userMetaOf } from './object-meta.js';

test('image ids: written as S3 user metadata and read back from response headers', () => {
  const ids = { sweepId: 'sw-1', renderKey: 'rk', jobId: 'job-1' };
  const meta = imageObjectMeta(ids);
  assert.deepEqual(meta, { 'sweep-id': 'sw-1', 'render-key': 'rk', 'job-id': 'job-1' });
  // S3 returns them as lower-case x-amz-meta-* headers beside the standard ones.
  const headers = { 'content-type': 'image/png', 'x-amz-meta-sweep-id': 'sw-1', 'x-amz-meta-render-key': 'rk', 'x-amz-meta-job-id': 'job-1', 'x-amz-meta-list': ['a'] as unknown as string };
  assert.deepEqual(userMetaOf(headers), meta);
  assert.deepEqual(imageIdsOf(userMetaOf(headers)), ids);
});

test('missing metadata: no ids, no headers', () => {
  assert.deepEqual(imageIdsOf({ 'render-key': 'rk' }), { renderKey: 'rk' });
  assert.deepEqual(imageIdsOf({}), {});
  assert.deepEqual(userMetaOf(undefined), {});
});

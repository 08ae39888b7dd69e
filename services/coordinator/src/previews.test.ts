/** Previews: stored newest-first per job, and never one over the size bound. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@nightshift/common';
import { MAX_PREVIEW_BYTES, PreviewStore } from './previews.js';

test('a preview over MAX_PREVIEW_BYTES is refused and not uploaded; one at the bound is', async () => {
  const puts: [string, number][] = [];
  const previews = new PreviewStore({ put: async (key, body) => void puts.push([key, (body as Buffer).length]) }, createLogger('previews-test', 'silent'));
  assert.equal(previews.offer('job-1', Buffer.alloc(MAX_PREVIEW_BYTES + 1)), false);
  assert.equal(previews.offer('job-2', Buffer.alloc(MAX_PREVIEW_BYTES)), true);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(puts, [['previews/job-2.webp', MAX_PREVIEW_BYTES]]);
});

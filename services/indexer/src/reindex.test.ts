import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyMismatchError, metaFromEvent, retryDelayMs, variantFromEvent } from './consumer.js';
import { metaFromObject } from './reindex.js';
import { fixtureImage } from '@nightshift/devfarm';
import { imageObjectMeta } from '@nightshift/common';

test('the bucket alone yields the same catalog entry as the event (but the node, and the time is the upload time)', async () => {
  const f = await fixtureImage({ prompt: 'a red circle, by "Someone", 50% off: yes', seed: 42, sweepId: 'sw-1' });
  const fromEvent = metaFromEvent(f.event);
  // The object metadata as the gpu-node writes it.
  const meta = imageObjectMeta({ sweepId: 'sw-1', renderKey: f.event.renderKey, jobId: f.event.jobId });
  assert.deepEqual(meta, { 'sweep-id': 'sw-1', 'render-key': f.event.renderKey, 'job-id': f.event.jobId }, 'the header names are a stored contract');
  const fromBucket = metaFromObject(f.event.key, { bytes: f.png, meta }, f.event.createdAt);
  assert.deepEqual({ ...fromBucket, source: 'event', node: fromEvent.node, storedAt: '' }, fromEvent);
  // Without object metadata the render key still comes from the file name.
  assert.equal(metaFromObject(f.event.key, { bytes: f.png, meta: {} }, f.event.createdAt).renderKey, f.event.renderKey);
  assert.throws(() => metaFromObject('images/x.png', { bytes: Buffer.from('not a png'), meta: {} }, ''), /not a PNG/);
  // Neither a file name outside images/ nor metadata naming no usable key gives a render key.
  assert.throws(() => metaFromObject('thumbs/x.webp', { bytes: f.png, meta: {} }, ''), /no render key/);
  assert.throws(() => metaFromObject(f.event.key, { bytes: f.png, meta: { 'render-key': '../x' } }, ''), /refusing render key/);
});

test('events that cannot be indexed are refused; upscales point at their original', () => {
  assert.throws(() => metaFromEvent({} as never), /missing renderKey/);
  assert.throws(() => metaFromEvent({ renderKey: 'r', key: 'thumbs/r.webp' } as never), /not an image key/);
  assert.throws(() => metaFromEvent({ renderKey: 'r', key: 'images/../../etc/passwd.png' } as never), /refusing object key/);
  assert.throws(() => metaFromEvent({ renderKey: 'a/b', key: 'images/r.png' } as never), /refusing render key/);
  assert.deepEqual(variantFromEvent({ renderKey: 'up-1', key: 'upscaled/r1.png', sourceKey: 'images/r1.png', model: 'tiny-x4', createdAt: '2026-01-01T00:00:00Z' }), {
    key: 'upscaled/r1.png',
    render_key: 'r1',
    source_key: 'images/r1.png',
    model: 'tiny-x4',
    created_at: '2026-01-01T00:00:00Z',
  });
  assert.equal(variantFromEvent({ renderKey: 'r2', key: 'upscaled/r2.png' }).render_key, 'r2');
  assert.throws(() => variantFromEvent({ renderKey: 'r', key: 'images/r.png' }), /upscaled key/);
  assert.equal(variantFromEvent({ renderKey: 'r3', key: 'upscaled/r3.png', sourceKey: 'thumbs/r9.webp' }).render_key, 'r3', 'only an image key names the original');
  assert.throws(() => variantFromEvent({ renderKey: '../r', key: 'upscaled/r.png' }), /refusing render key/);
});

test("an event whose key is not its renderKey's is refused as such (it would file one image under another's name)", () => {
  assert.throws(() => metaFromEvent({ renderKey: 'BBB', key: 'images/AAA.png' } as never), (err) => err instanceof KeyMismatchError && /images\/AAA\.png is not images\/BBB\.png/.test(err.message));
  assert.equal(metaFromEvent({ renderKey: 'AAA', key: 'images/AAA.png' } as never).renderKey, 'AAA');
  assert.throws(() => variantFromEvent({ renderKey: 'r1', key: 'upscaled/r2.png' }), KeyMismatchError);
  assert.throws(() => variantFromEvent({ renderKey: 'x', key: 'upscaled/r2.png', sourceKey: 'images/r1.png' }), KeyMismatchError, 'the original named by sourceKey decides');
});

test('a transient failure is retried after 1 s, 2 s, 4 s … at most a minute', () => {
  assert.deepEqual([1, 2, 3, 4].map(retryDelayMs), [1_000, 2_000, 4_000, 8_000]);
  assert.equal(retryDelayMs(50), 60_000);
  assert.equal(retryDelayMs(0), 1_000);
});

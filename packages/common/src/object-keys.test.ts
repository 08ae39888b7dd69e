import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertRenderKey, assertSafeKey, imageKey, keyPrefix, previewKey, renderKeyOf, renderKeyOfImageRef, thumbKey, upscaledKey } from './object-keys.js';

const RK = 'a'.repeat(64);

test('builders: one key per prefix, checked', () => {
  assert.equal(imageKey(RK), `images/${RK}.png`);
  assert.equal(thumbKey(RK), `thumbs/${RK}.webp`);
  assert.equal(upscaledKey(RK), `upscaled/${RK}.png`);
  assert.equal(previewKey('job-1'), 'previews/job-1.webp');
  assert.throws(() => imageKey('../etc/passwd'), /refusing object key/);
  assert.throws(() => imageKey(''), /refusing object key/);
  assert.throws(() => assertSafeKey('secrets/x.png'), /not under images\/, thumbs\/, previews\/, upscaled\//);
  assert.throws(() => assertSafeKey('images/a..b.png'), /refusing/);
});

test('assertRenderKey: what every builder accepts', () => {
  assert.equal(assertRenderKey(RK), RK);
  for (const bad of ['', '../x', 'a/b', 'a..b', '.hidden', 'x'.repeat(196)]) assert.throws(() => assertRenderKey(bad), /refusing render key/, bad);
  assert.equal(assertRenderKey('x'.repeat(195)), 'x'.repeat(195), 'thumbs/ + 195 + .webp is the longest name');
});

test('renderKeyOf reads back what the builders write, and nothing else', () => {
  for (const build of [imageKey, thumbKey, upscaledKey]) assert.equal(renderKeyOf(build(RK)), RK);
  assert.equal(renderKeyOf(imageKey(RK), 'images'), RK);
  assert.equal(renderKeyOf(upscaledKey(RK), 'images'), undefined, 'another prefix than asked');
  assert.equal(renderKeyOf(thumbKey(RK), 'thumbs'), RK);
  for (const key of [previewKey('job-1'), `images/${RK}.webp`, `thumbs/${RK}.png`, 'images/.png', `x/images/${RK}.png`, RK, '']) {
    assert.equal(renderKeyOf(key), undefined, key);
  }
});

test('renderKeyOfImageRef: an image key or the renderKey itself', () => {
  assert.equal(renderKeyOfImageRef(imageKey(RK)), RK);
  assert.equal(renderKeyOfImageRef(RK), RK);
  assert.equal(renderKeyOfImageRef(thumbKey(RK)), thumbKey(RK), 'only image keys are unwrapped');
});

test('keyPrefix names the prefix a key sits under', () => {
  assert.equal(keyPrefix(imageKey(RK)), 'images');
  assert.equal(keyPrefix(upscaledKey(RK)), 'upscaled');
  assert.equal(keyPrefix('previews/j.webp'), 'previews');
  assert.equal(keyPrefix('imagesx/a.png'), undefined);
  assert.equal(keyPrefix(RK), undefined);
});

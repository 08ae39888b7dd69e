import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchForVram, estimateVramMb } from './vram.js';

test('a batch keeps one copy of the weights and multiplies the activations', () => {
  assert.equal(estimateVramMb(256, 256), 4096 + 1536);
  assert.equal(estimateVramMb(256, 256, 1), estimateVramMb(256, 256));
  assert.equal(estimateVramMb(256, 256, 4), 4096 + 4 * 1536);
  assert.equal(estimateVramMb(512, 512, 2), 4096 + 2 * 4 * 1536);
});

test('batchForVram: the most images whose estimate fits the card, never below 1, never above the ask', () => {
  assert.equal(batchForVram(256, 256, 8, 16_000), 7); // 4096 + 7·1536 = 14,848 ≤ 16,000 < 4096 + 8·1536
  assert.equal(batchForVram(256, 256, 8, 16_384), 8);
  assert.equal(batchForVram(256, 256, 4, 16_384), 4);
  assert.equal(batchForVram(512, 512, 8, 24_576), 3);
  assert.equal(batchForVram(512, 512, 8, 8_192), 1, 'a card below even one image still gets batches of one (placement keeps such jobs away)');
  assert.equal(batchForVram(64, 64, 1, 141_000), 1);
  for (let b = 1; b <= 8; b++) assert.ok(estimateVramMb(512, 512, batchForVram(512, 512, b, 40_000)) <= 40_000);
});

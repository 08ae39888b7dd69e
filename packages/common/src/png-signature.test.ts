import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasPngSignature, PNG_SIGNATURE } from './png-signature.js';

test('hasPngSignature: the eight PNG bytes at the start, nothing shorter', () => {
  assert.deepEqual([...PNG_SIGNATURE], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(hasPngSignature(Buffer.concat([PNG_SIGNATURE, Buffer.from('IHDR')])), true);
  assert.equal(hasPngSignature(new Uint8Array(PNG_SIGNATURE)), true);
  assert.equal(hasPngSignature(PNG_SIGNATURE.subarray(0, 7)), false);
  assert.equal(hasPngSignature(Buffer.from('GIF89a..')), false);
  assert.equal(hasPngSignature(Buffer.alloc(0)), false);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '@nightshift/devfarm';
import { isRacy, RACY_NS, sameFile, stampOf } from './file-stamp.js';
import { flipByte } from './test-helpers.js';

test('a stamp changes with a write that sets the mtime back, and with a file replaced by an identical one', async () => {
  const tmp = tempDir('nightshift-file-stamp-');
  try {
    const file = join(tmp.dir, 'w.bin');
    writeFileSync(file, Buffer.alloc(4096, 1));
    const first = (await stampOf(file))!;
    assert.ok(sameFile(first, (await stampOf(file))!), 'an untouched file keeps its stamp');

    flipByte(file, 100, true);
    const flipped = (await stampOf(file))!;
    assert.equal(flipped.size, first.size);
    assert.equal(flipped.mtimeNs, first.mtimeNs, 'the mtime was set back');
    assert.notEqual(flipped.ctimeNs, first.ctimeNs, 'the ctime moved (this is what the cache relies on)');
    assert.ok(!sameFile(first, flipped));

    // Another file renamed over it: a new inode, even with the same bytes.
    const other = join(tmp.dir, 'other.bin');
    writeFileSync(other, Buffer.alloc(4096, 1));
    renameSync(other, file);
    assert.ok(!sameFile(flipped, (await stampOf(file))!));
    assert.equal(await stampOf(join(tmp.dir, 'missing')), undefined);
    assert.equal(await stampOf(tmp.dir), undefined, 'a folder has no stamp');
  } finally {
    tmp.cleanup();
  }
});

test('a stamp taken within RACY_NS of its file\'s last change is racy', () => {
  const at = 1_800_000_000_000_000_000n;
  const s = (ctime: bigint) => ({ size: 1, mtimeNs: '0', ino: '1', dev: '1', ctimeNs: String(ctime), takenNs: String(at) });
  assert.equal(isRacy(s(at - 1_000_000n)), true);
  assert.equal(isRacy(s(at - RACY_NS)), false);
  assert.equal(isRacy(s(at - 10n * RACY_NS)), false);
});

/** Generated protobuf code is never edited by hand: regenerate and compare. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tempDir } from '@nightshift/devfarm';

const ROOT = new URL('../../', import.meta.url).pathname;
const GEN = 'packages/proto/src/gen';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

test('committed generated code matches proto/', () => {
  const tmp = tempDir('nightshift-gen-');
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/buf'), ['generate', '-o', tmp.dir], { cwd: ROOT, stdio: 'pipe' });
    const fresh = files(join(tmp.dir, GEN)).map((f) => relative(join(tmp.dir, GEN), f)).sort();
    const committed = files(join(ROOT, GEN)).map((f) => relative(join(ROOT, GEN), f)).sort();
    assert.deepEqual(committed, fresh, 'generated file set differs: run `npm run generate`');
    for (const f of fresh) {
      assert.equal(readFileSync(join(ROOT, GEN, f), 'utf8'), readFileSync(join(tmp.dir, GEN, f), 'utf8'), `${f} is stale: run \`npm run generate\``);
    }
  } finally {
    tmp.cleanup();
  }
});

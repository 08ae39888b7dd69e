/** `npm run up`'s registration of the built-in tiny models, against a real s3rver: the registry add path, instant the second time. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Storage } from '@nightshift/common';
import { listModels } from '@nightshift/registry';
import { TINY_CLIP_NAME, TINY_SD_NAME, TINY_UPSCALER_NAME } from '@nightshift/models';
import { registerBuiltinModels } from './builtin-models.js';
import { startS3Server } from './s3-server.js';
import { tempDir } from './tmp.js';

test('the built-in tiny models are registered under their names and kinds; registering again uploads nothing', { timeout: 300_000 }, async () => {
  const tmp = tempDir('nightshift-builtin-models-');
  const s3 = await startS3Server(join(tmp.dir, 's3'));
  try {
    const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
    const first = await registerBuiltinModels(storage, join(tmp.dir, 'models'));
    assert.deepEqual(first.map((m) => [m.name, m.kind, m.existed]), [
      [TINY_CLIP_NAME, 'clip', false],
      [TINY_UPSCALER_NAME, 'upscaler', false],
      [TINY_SD_NAME, 'diffusion', false],
    ]);
    const listed = await listModels(storage);
    assert.deepEqual(listed.map((m) => [m.name, m.manifest.hash, m.manifest.kind]).sort(), first.map((m) => [m.name, m.hash, m.kind]).sort());
    const again = await registerBuiltinModels(storage, join(tmp.dir, 'models'));
    assert.deepEqual(again.map((m) => [m.hash, m.existed]), first.map((m) => [m.hash, true]));
  } finally {
    await s3.stop();
    tmp.cleanup();
  }
});

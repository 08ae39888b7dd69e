/**
 * NIGHTSHIFT_AESTHETIC_MODEL's forms, against a real s3rver for the registry:
 * the built-in name builds the test head, `registry:NAME` fetches a head added
 * with the registry's own addModel (by name or hash) and it scores like the
 * file it was made from; unknown names and models that are not one head are
 * refused, saying why.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Storage } from '@nightshift/common';
import { startS3Server, tempDir, type S3Server } from '@nightshift/devfarm';
import { ensureTinyAesthetic, TINY_AESTHETIC_NAME, TINY_CLIP_DIM } from '@nightshift/models';
import { addModel } from '@nightshift/registry';
import { loadAestheticHead } from './aesthetic-head.js';
import { aestheticHeadFile } from './aesthetic-setting.js';

describe('NIGHTSHIFT_AESTHETIC_MODEL', () => {
  let tmp: ReturnType<typeof tempDir>;
  let s3: S3Server;
  let storage: Storage;

  before(async () => {
    tmp = tempDir('aesthetic-setting-');
    s3 = await startS3Server(join(tmp.dir, 's3'));
    storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
  });
  after(async () => {
    await s3?.stop();
    tmp?.cleanup();
  });

  test('the built-in name builds the test head into the data folder; other text must be an .onnx file', async () => {
    const data = join(tmp.dir, 'data-builtin');
    assert.equal(await aestheticHeadFile(TINY_AESTHETIC_NAME, data, storage), join(data, 'models', `${TINY_AESTHETIC_NAME}.onnx`));
    await assert.rejects(aestheticHeadFile('laion/aesthetic', data, storage), /neither an \.onnx file, registry:NAME nor nightshift-tiny-aesthetic/);
    assert.equal(await aestheticHeadFile('/somewhere/head.onnx', data, storage), '/somewhere/head.onnx');
  });

  test('registry:NAME (or its hash): the head is fetched into the data folder and scores like the original', async () => {
    const original = await ensureTinyAesthetic(join(tmp.dir, 'built'));
    const added = await addModel(storage, 'tiny-aesthetic', 'clip', original);
    const data = join(tmp.dir, 'data-registry');
    const file = await aestheticHeadFile('registry:tiny-aesthetic', data, storage);
    assert.ok(file.startsWith(join(data, 'models')), file);
    assert.equal(await aestheticHeadFile(`registry:${added.manifest.hash}`, data, storage), file);
    const [a, b] = await Promise.all([loadAestheticHead(file, TINY_CLIP_DIM), loadAestheticHead(original, TINY_CLIP_DIM)]);
    const x = Float32Array.from({ length: TINY_CLIP_DIM }, (_, i) => (i === 3 ? 0.8 : 0.15));
    assert.deepEqual(await a.score([x]), await b.score([x]));
    assert.equal(a.id.split('@')[1], b.id.split('@')[1], 'the same bytes');
    await Promise.all([a.dispose(), b.dispose()]);
  });

  test('registry:NAME that is unknown, or not exactly one .onnx file, is refused saying why', async () => {
    const data = join(tmp.dir, 'data-bad');
    await assert.rejects(aestheticHeadFile('registry:nobody', data, storage), /registry:nobody: no model of that name or hash in the registry/);
    await assert.rejects(aestheticHeadFile('registry:../x', data, storage), (err: Error) => /registry:\.\.\/x: refusing model name/.test(err.message) && !/could not be read/.test(err.message));
    await assert.rejects(aestheticHeadFile('registry:', data, storage), /registry:: refusing model name ""/);
    const two = join(tmp.dir, 'two-heads');
    mkdirSync(two);
    const head = await ensureTinyAesthetic(join(tmp.dir, 'built'));
    copyFileSync(head, join(two, 'a.onnx'));
    copyFileSync(head, join(two, 'b.onnx'));
    await addModel(storage, 'two-heads', 'clip', two);
    await assert.rejects(aestheticHeadFile('registry:two-heads', data, storage), /holds 2 \.onnx files \(a\.onnx, b\.onnx\); an aesthetic head is one/);
    const none = join(tmp.dir, 'no-head');
    mkdirSync(none);
    writeFileSync(join(none, 'README'), 'no model here');
    await addModel(storage, 'no-head', 'generator-asset', none);
    await assert.rejects(aestheticHeadFile('registry:no-head', data, storage), /holds 0 \.onnx files \(none\)/);
  });
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertModelFilePath, assertModelName, modelFileKey, modelNameKey } from '@nightshift/common';
import { addModel, buildManifest, ModelCache, listModels, modelHash, parseManifest, removeModel, resolveModel } from './mod.js';
import { startTestBucket, writeModel, type TestBucket } from './test-helpers.js';
import { getJson, MAX_JSON_BYTES } from './bucket.js';

let b: TestBucket;
before(async () => {
  b = await startTestBucket();
});
after(async () => {
  await b?.stop();
});

test('model keys: no path escapes models/', () => {
  const h = 'a'.repeat(64);
  assert.equal(modelFileKey(h, 'unet/model.onnx'), `models/${h}/files/unet/model.onnx`);
  for (const bad of ['../x', 'a/../b', '/etc/passwd', 'a\\b', 'a//b', '', '.', 'a/./b', 'a/', 'x\n', ' a']) {
    assert.throws(() => assertModelFilePath(bad), /refusing model file path/, JSON.stringify(bad));
  }
  for (const bad of ['', '../x', 'a/b', 'a..b', '.x', h]) assert.throws(() => assertModelName(bad), /refusing model name/, bad);
  assert.throws(() => modelFileKey('../x', 'a'), /refusing model hash/);
  assert.throws(() => modelNameKey('a/b'), /refusing model name/);
});

test('the model hash is the coreutils recipe the docs give', (t) => {
  const dir = writeModel(join(b.dir, 'recipe'), { 'b.bin': 'bee', 'a/z.txt': 'zed', 'A.txt': 'upper', 'a-b': 'dash' });
  let shell: string;
  try {
    shell = execFileSync('bash', ['-c', "(cd \"$1\" && find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum) | sha256sum", '_', dir], { encoding: 'utf8' });
  } catch {
    t.skip('bash/coreutils not available');
    return;
  }
  const sha = (s: string) => execFileSync('sha256sum', { input: s, encoding: 'utf8' }).slice(0, 64);
  const files = [
    { path: 'b.bin', sha256: sha('bee') },
    { path: 'a/z.txt', sha256: sha('zed') },
    { path: 'A.txt', sha256: sha('upper') },
    { path: 'a-b', sha256: sha('dash') },
  ];
  assert.equal(modelHash(files), shell.slice(0, 64));
});

test('a manifest that does not hash to its name is refused', () => {
  const m = buildManifest('m', 'clip', [{ path: 'x', size: 1, sha256: 'b'.repeat(64) }]);
  assert.equal(parseManifest(JSON.parse(JSON.stringify(m))).hash, m.hash);
  assert.throws(() => parseManifest({ ...m, files: [{ path: 'x', size: 1, sha256: 'c'.repeat(64) }] }), /hash to/);
  // A hostile manifest that hashes right but names paths outside its folder, or a path twice, or a file as a folder.
  const hostile = (files: { path: string; size: number; sha256: string }[]) => ({ ...m, files, hash: modelHash(files), totalSize: files.reduce((n, f) => n + f.size, 0) });
  for (const path of ['../../x', 'a/../../x', '/etc/passwd', 'a\\..\\x', '.']) {
    assert.throws(() => parseManifest(hostile([{ path, size: 1, sha256: 'b'.repeat(64) }])), /refusing model file path/, path);
  }
  const f = (path: string) => ({ path, size: 1, sha256: 'b'.repeat(64) });
  assert.throws(() => parseManifest(hostile([f('x'), f('x')])), /lists the same file path twice/);
  assert.throws(() => parseManifest(hostile([f('a'), f('a/b/c')])), /lists a both as a file and as the folder of a\/b\/c/);
  assert.equal(parseManifest(hostile([f('a/b'), f('a/c'), f('ab')])).files.length, 3);
});

test('add a folder, re-add is instant, a re-pointed name keeps the old hash resolvable, rm', async () => {
  const v1 = writeModel(join(b.dir, 'v1'), { 'model_index.json': '{}', 'unet/model.onnx': Buffer.alloc(300_000, 7), 'text_encoder/model.onnx': 'te' });
  const progress: number[] = [];
  b.calls.puts.length = 0;
  const first = await addModel(b.storage, 'tiny-sd', 'diffusion', v1, (p) => p.phase === 'upload' && progress.push(p.bytesDone));
  assert.equal(first.uploaded, 3);
  assert.equal(first.existed, false);
  assert.equal(b.calls.puts.length, 3);
  assert.equal(first.manifest.totalSize, 300_004);
  assert.deepEqual(first.manifest.files.map((f) => f.path), ['model_index.json', 'text_encoder/model.onnx', 'unet/model.onnx']);
  assert.equal(progress.at(-1), 300_004, 'the progress callback reaches the total');

  b.calls.puts.length = 0;
  const again = await addModel(b.storage, 'tiny-sd', 'diffusion', v1);
  assert.equal(again.existed, true);
  assert.equal(again.manifest.hash, first.manifest.hash);
  assert.equal(b.calls.puts.length, 0, 're-adding the same content uploads nothing');

  const v2 = writeModel(join(b.dir, 'v2'), { 'model_index.json': '{"v":2}', 'unet/model.onnx': Buffer.alloc(300_000, 7), 'text_encoder/model.onnx': 'te' });
  const second = await addModel(b.storage, 'tiny-sd', 'diffusion', v2);
  assert.notEqual(second.manifest.hash, first.manifest.hash);
  assert.equal((await resolveModel(b.storage, 'tiny-sd'))?.hash, second.manifest.hash, 'the name points at the new content');
  assert.equal((await resolveModel(b.storage, first.manifest.hash))?.hash, first.manifest.hash, 'the old hash stays for sweeps that resolved to it');
  assert.equal(await resolveModel(b.storage, 'no-such-model'), undefined);

  const single = join(b.dir, 'up.onnx');
  writeFileSync(single, 'upscaler');
  const up = await addModel(b.storage, 'tiny-up', 'upscaler', single);
  assert.deepEqual(up.manifest.files.map((f) => f.path), ['up.onnx']);

  const listed = await listModels(b.storage);
  assert.deepEqual(listed.map((m) => [m.name, m.manifest.hash]), [['tiny-sd', second.manifest.hash], ['tiny-up', up.manifest.hash]]);

  const removed = await removeModel(b.storage, 'tiny-up');
  assert.deepEqual(removed, { hash: up.manifest.hash, contentRemoved: true });
  assert.equal(await resolveModel(b.storage, up.manifest.hash), undefined);
  assert.equal(await removeModel(b.storage, 'tiny-up'), undefined);
  assert.deepEqual((await listModels(b.storage)).map((m) => m.name), ['tiny-sd']);
});

test('an interrupted add resumes: files already stored with the right sha256 are skipped', async () => {
  const dir = writeModel(join(b.dir, 'resume'), { 'a.bin': Buffer.alloc(1000, 1), 'b.bin': Buffer.alloc(1000, 2), 'c.bin': Buffer.alloc(1000, 3) });
  const client = b.storage.client;
  const put = client.putObject;
  let n = 0;
  // The third file upload fails, as a dropped connection would.
  client.putObject = ((...args: Parameters<typeof put>) => {
    if (String(args[1]).includes('/files/') && ++n === 3) return Promise.reject(new Error('connection dropped'));
    return put.apply(client, args);
  }) as typeof put;
  await assert.rejects(addModel(b.storage, 'resumable', 'generator-asset', dir), /connection dropped/);
  client.putObject = put;
  assert.equal(await resolveModel(b.storage, 'resumable'), undefined, 'no manifest, no name: the model is not half-registered');
  b.calls.puts.length = 0;
  const done = await addModel(b.storage, 'resumable', 'generator-asset', dir);
  assert.deepEqual([done.uploaded, done.skipped], [1, 2]);
  assert.equal(b.calls.puts.length, 1);
});

test('a file above the part size goes up as a multipart upload, with its sha256, and downloads verified', async () => {
  const MiB = 1024 * 1024;
  const body = Buffer.alloc(11 * MiB);
  for (let i = 0; i < body.length; i += 4096) body[i] = i % 251;
  const dir = writeModel(join(b.dir, 'multi'), { 'big.safetensors': body });
  const progress: number[] = [];
  const { manifest, uploaded } = await addModel(b.storage, 'multi', 'diffusion', dir, (p) => p.phase === 'upload' && progress.push(p.bytesDone), { partSize: 5 * MiB });
  assert.equal(uploaded, 1);
  assert.deepEqual(progress, [0, 5 * MiB, 10 * MiB, 11 * MiB], 'a start, then one step per part');
  const st = await b.storage.client.statObject(b.storage.bucket, modelFileKey(manifest.hash, 'big.safetensors'));
  assert.equal(st.size, body.length);
  assert.equal(st.metaData.sha256, manifest.files[0]!.sha256);
  b.calls.puts.length = 0;
  assert.equal((await addModel(b.storage, 'multi', 'diffusion', dir, undefined, { partSize: 5 * MiB })).existed, true);
  const path = await new ModelCache(join(b.dir, 'multi-cache'), 100 * MiB).ensure(manifest.hash, b.storage);
  assert.deepEqual(readFileSync(join(path, 'big.safetensors')), body);
});

test('a manifest or name pointer over the size bound is refused, not read into memory', async () => {
  const key = `models/${'c'.repeat(64)}/manifest.json`;
  await b.storage.client.putObject(b.storage.bucket, key, Buffer.from(`{"pad":"${'x'.repeat(300)}"}`));
  assert.deepEqual(Object.keys((await getJson(b.storage, key)) as object), ['pad']);
  await assert.rejects(getJson(b.storage, key, 200), new RegExp(`${key} is larger than 200 bytes: not read`));
  assert.equal(MAX_JSON_BYTES, 8 * 1024 * 1024);
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Storage } from '@nightshift/common';
import { startS3Server, tempDir, type S3Server } from '@nightshift/devfarm';
import { resolveModel } from '@nightshift/registry';
import { main } from '../cli.js';

let s3: S3Server;
const tmp = tempDir('nightshift-cli-models-');

before(async () => {
  s3 = await startS3Server(join(tmp.dir, 's3'));
});
after(async () => {
  await s3?.stop();
  tmp.cleanup();
});

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (b: Buffer) => (o += b.toString()));
  err.on('data', (b: Buffer) => (e += b.toString()));
  const code = await main(['node', 'nightshift', ...args], { out, err, env: {} });
  return { code, out: o, err: e };
}

test('models add uploads to the bucket, a second add uploads nothing; bad input exits 2', async () => {
  const dir = join(tmp.dir, 'clip');
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  writeFileSync(join(dir, 'onnx', 'model.onnx'), 'weights');
  writeFileSync(join(dir, 'config.json'), '{}');
  const s3args = ['--s3-endpoint', s3.endpoint, '--s3-access-key', s3.accessKey, '--s3-secret-key', s3.secretKey];
  const first = await run(['--json', 'models', 'add', 'tiny-clip', dir, '--kind', 'clip', ...s3args]);
  assert.equal(first.code, 0, first.err);
  const added = JSON.parse(first.out) as { hash: string; uploaded: number; existed: boolean; files: number };
  assert.deepEqual([added.uploaded, added.existed, added.files], [2, false, 2]);
  const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  assert.equal((await resolveModel(storage, 'tiny-clip'))?.hash, added.hash);

  const again = await run(['models', 'add', 'tiny-clip', dir, '--kind', 'clip', ...s3args]);
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, new RegExp(`^tiny-clip → ${added.hash} \\(clip, 9B, 2 file\\(s\\)\\): already in the registry: nothing uploaded`));

  assert.equal((await run(['models', 'add', '../x', dir, ...s3args])).code, 2);
  assert.equal((await run(['models', 'add', 'x', join(tmp.dir, 'missing'), ...s3args])).code, 2);
  assert.equal((await run(['models', 'add', 'x', dir, '--kind', 'lora', ...s3args])).code, 2);
});

test('models list and rm talk to the coordinator', async () => {
  const hash = 'a'.repeat(64);
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.setHeader('content-type', 'application/json');
    if (req.method === 'GET') return res.end(JSON.stringify({ models: [{ name: 'tiny-clip', hash, kind: 'clip', size: 2_500_000, files: [{}, {}], addedAt: new Date().toISOString(), nodes: ['n1'] }] }));
    if (req.url === '/api/models/busy') return (res.statusCode = 409), res.end(JSON.stringify({ error: 'model busy is in use: 3 queued jobs' }));
    if (req.url === '/api/models/nope') return (res.statusCode = 404), res.end(JSON.stringify({ error: 'no model nope' }));
    res.end(JSON.stringify({ name: 'tiny-clip', hash, contentRemoved: true }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const list = await run(['--url', url, 'models', 'list']);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /^NAME +HASH +KIND +SIZE +FILES +NODES +ADDED\ntiny-clip +aaaaaaaaaaaa +clip +2\.5MB +2 +1 /);
    const rm = await run(['--url', url, 'models', 'rm', 'tiny-clip']);
    assert.equal(rm.out, `removed tiny-clip (aaaaaaaaaaaa)\n`);
    const busy = await run(['--url', url, 'models', 'rm', 'busy']);
    assert.equal(busy.code, 1);
    assert.match(busy.err, /in use: 3 queued jobs/);
    assert.equal((await run(['--url', url, 'models', 'rm', 'nope'])).code, 2);
    assert.deepEqual(seen, ['GET /api/models', 'DELETE /api/models/tiny-clip', 'DELETE /api/models/busy', 'DELETE /api/models/nope']);
  } finally {
    server.close();
  }
});

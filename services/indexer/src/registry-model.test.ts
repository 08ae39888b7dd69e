/** NIGHTSHIFT_CLIP_MODEL=registry:NAME against a real s3rver: resolved, pulled, verified, loaded; else the loud fallback. */
import assert from 'node:assert/strict';
import { closeSync, cpSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Storage } from '@nightshift/common';
import { startS3Server, tempDir, type S3Server } from '@nightshift/devfarm';
import { ensureTinyClip } from '@nightshift/models';
import { addModel } from '@nightshift/registry';
import { loadModel } from './model.js';
import { registryCacheCap } from './registry-model.js';

function capture() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, lines };
}

describe('CLIP model from the registry', { timeout: 120_000 }, () => {
  let tmp: ReturnType<typeof tempDir>;
  let s3: S3Server;
  let storage: Storage;
  let clip: string;

  before(async () => {
    tmp = tempDir('nightshift-indexer-registry-');
    s3 = await startS3Server(join(tmp.dir, 's3'));
    storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
    clip = await ensureTinyClip(join(tmp.dir, 'built'));
  });
  after(async () => {
    await s3?.stop();
    tmp?.cleanup();
  });

  const opts = () => ({ registry: { storage, capBytes: 1e9, attempts: 2, retryDelayMs: 10 } });

  test('resolved by name, pulled into the data folder, loaded; a flipped byte is fetched again at the next load; a re-add is a model change', async () => {
    const { manifest } = await addModel(storage, 'my-clip', 'clip', clip);
    const data = join(tmp.dir, 'data');
    const a = await loadModel('registry:my-clip', data, capture().log, opts());
    assert.equal(a.id, `registry:my-clip@${manifest.hash.slice(0, 12)}`);
    assert.equal(a.fallback, undefined);
    const red = await a.embedder.embedTexts(['red']);
    await a.embedder.dispose();

    const cached = join(data, 'model-cache', manifest.hash, 'config.json');
    const good = readFileSync(cached);
    const fd = openSync(cached, 'r+');
    writeSync(fd, Buffer.from([good[0]! ^ 0xff]), 0, 1, 0);
    closeSync(fd);
    const b = await loadModel('registry:my-clip', data, capture().log, opts());
    assert.equal(b.fallback, undefined);
    assert.deepEqual(readFileSync(cached), good, 'the corrupt file was replaced before loading');
    assert.deepEqual(await b.embedder.embedTexts(['red']), red);
    await b.embedder.dispose();

    const changed = join(tmp.dir, 'changed');
    cpSync(clip, changed, { recursive: true });
    const config = JSON.parse(readFileSync(join(changed, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(changed, 'config.json'), JSON.stringify({ ...config, note: 'v2' }));
    const v2 = (await addModel(storage, 'my-clip', 'clip', changed)).manifest;
    const c = await loadModel(`registry:my-clip`, data, capture().log, opts());
    assert.equal(c.id, `registry:my-clip@${v2.hash.slice(0, 12)}`);
    await c.embedder.dispose();
    const byHash = await loadModel(`registry:${manifest.hash}`, data, capture().log, opts());
    assert.equal(byHash.id, `registry:${manifest.hash}@${manifest.hash.slice(0, 12)}`);
    await byHash.embedder.dispose();
  });

  test('a name the registry lacks, or a model of another kind: the test model, an error line, and the reason in modelFallback', async () => {
    const { log, lines } = capture();
    const m = await loadModel('registry:no-such-clip', join(tmp.dir, 'data-2'), log, opts());
    assert.match(m.id, /^nightshift-tiny-clip@/);
    assert.match(m.fallback ?? '', /no model "no-such-clip" in the registry/);
    assert.ok(lines.some((l) => l.level === 50 && /could not be loaded from the model registry: FALLING BACK/.test(l.msg)));
    await m.embedder.dispose();

    await addModel(storage, 'not-a-clip', 'upscaler', join(clip, 'config.json'));
    const other = await loadModel('registry:not-a-clip', join(tmp.dir, 'data-3'), capture().log, opts());
    assert.match(other.fallback ?? '', /registry model not-a-clip is registered as kind upscaler, not clip/);
    await other.embedder.dispose();

    await assert.rejects(loadModel('registry:my-clip', join(tmp.dir, 'data-4'), capture().log), /no bucket to read the model registry from/);
  });

  test('the cache cap comes from NIGHTSHIFT_MODEL_CACHE_GB', () => {
    assert.equal(registryCacheCap({}), 50 * 1024 ** 3);
    assert.equal(registryCacheCap({ NIGHTSHIFT_MODEL_CACHE_GB: '0.5' }), 512 * 1024 ** 2);
    assert.throws(() => registryCacheCap({ NIGHTSHIFT_MODEL_CACHE_GB: '-1' }), /a positive number of GB/);
  });
});

/**
 * /api/wildcards and dynamic prompts on the whole HTTP app (request guard,
 * token-less loopback), in process over a real s3rver bucket: the list
 * routes' contract, and a list used by a preview and a submission that make
 * the same choices.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { Storage, wildcardKey } from '@nightshift/common';
import { seededCoordinator, startS3Server, tempDir, type S3Server, type SeededCoordinator } from '@nightshift/devfarm';
import { createHttpApp } from './http.js';
import { Live } from './live.js';

const ORIGIN = 'http://127.0.0.1:8080';

describe('/api/wildcards', () => {
  let tmp: ReturnType<typeof tempDir>;
  let s3: S3Server;
  let storage: Storage;
  let seeded: SeededCoordinator;
  let app: Hono;

  before(async () => {
    tmp = tempDir();
    s3 = await startS3Server(join(tmp.dir, 's3'));
    storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
    seeded = seededCoordinator(tmp.dir, {}, storage);
    app = createHttpApp({ ...seeded.deps, hub: { ...seeded.deps.hub, connectedNodeIds: () => [] }, placement: { explain: () => [] }, live: new Live() });
  });
  after(async () => {
    seeded?.close();
    await s3?.stop();
    tmp?.cleanup();
  });

  const call = (method: string, path: string, body?: string | Uint8Array, headers: Record<string, string> = {}) =>
    app.request(`${ORIGIN}${path}`, { method, headers: { host: '127.0.0.1:8080', ...headers }, ...(body !== undefined ? { body } : {}) });
  const put = (name: string, text: string | Uint8Array, headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' }) => call('PUT', `/api/wildcards/${name}`, text, headers);
  const json = async <T>(res: Response) => (await res.json()) as T;

  test('put, list, show, delete; the object is wildcards/{name}.txt in the bucket', async () => {
    const res = await put('colors', '# my colors\nred\n\n  green \nblue\n');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { name: 'colors', lines: 3 });
    assert.equal((await storage.client.statObject(storage.bucket, wildcardKey('colors'))).size, Buffer.byteLength('# my colors\nred\n\n  green \nblue\n'));
    assert.equal((await put('moods', 'calm\n{stormy|wild}\n')).status, 200);
    assert.deepEqual(await json(await call('GET', '/api/wildcards')), { wildcards: [{ name: 'colors', lines: 3 }, { name: 'moods', lines: 2 }] });
    assert.deepEqual(await json(await call('GET', '/api/wildcards/colors')), { name: 'colors', lines: ['red', 'green', 'blue'], text: '# my colors\nred\n\n  green \nblue\n' });
    assert.equal((await put('moods', 'calm\n')).status, 200, 'a PUT replaces');
    assert.deepEqual((await json<{ lines: string[] }>(await call('GET', '/api/wildcards/moods'))).lines, ['calm']);
    assert.equal((await call('DELETE', '/api/wildcards/moods')).status, 204);
    assert.equal((await call('DELETE', '/api/wildcards/moods')).status, 404);
    assert.equal((await call('GET', '/api/wildcards/moods')).status, 404);
  });

  test('refusals: bad names, JSON bodies, other origins, too many lines or bytes, bad syntax (by line), no lines', async () => {
    for (const bad of ['Colors', 'a.b', 'x'.repeat(65), 'a%2Fb']) assert.equal((await put(bad, 'x')).status, 400, bad);
    assert.ok((await put('..', 'x')).status >= 400, 'a dot-dot never reaches the bucket');
    assert.equal((await put('c', '["red"]', { 'content-type': 'application/json' })).status, 415);
    assert.equal((await put('c', 'red', { 'content-type': 'application/x-www-form-urlencoded' })).status, 415, 'the guard admits text/plain only');
    assert.equal((await call('POST', '/api/wildcards/c', 'red', { 'content-type': 'text/plain' })).status, 415, 'text/plain on PUT only');
    assert.equal((await put('c', 'red', { 'content-type': 'text/plain', origin: 'http://evil.example' })).status, 403);
    assert.equal((await put('c', 'x\n'.repeat(10_001))).status, 400);
    assert.equal((await put('c', 'x'.repeat(1024 * 1024 + 1))).status, 413);
    assert.equal((await put('c', new Uint8Array([0xff, 0xfe, 0x41]))).status, 400, 'not UTF-8');
    const syntax = await json<{ details: { path: string; message: string }[] }>(await put('c', 'ok\n# fine\n{a|b\n'));
    assert.deepEqual(syntax.details, [{ path: 'line 3', message: 'unbalanced "{": no "}" closes it (at character 0)' }]);
    assert.match((await json<{ details: { message: string }[] }>(await put('c', '# only a comment\n\n'))).details[0]!.message, /no lines/);
    assert.equal((await call('GET', '/api/wildcards/c')).status, 404, 'nothing refused was stored');
  });

  test('the preview shows the lines a submission then stores; an unknown list is refused with its place', async () => {
    assert.equal((await put('animals', 'cat\ndog\nfox\nowl\n{red|blue} bird\n')).status, 200);
    const spec = { prompts: ['a __animals__ in {rain|snow}', 'plain'], axes: { style: ['oil', 'ink'] }, seeds: [3] };
    const preview = await json<{ samples: { prompt: string }[] }>(await call('POST', '/api/sweeps/preview', JSON.stringify(spec), { 'content-type': 'application/json' }));
    assert.equal(preview.samples.length, 4);
    for (const s of preview.samples.slice(0, 2)) assert.match(s.prompt, /^a (cat|dog|fox|owl|red bird|blue bird) in (rain|snow), (oil|ink)$/);
    const submitted = await json<{ id: string }>(await call('POST', '/api/sweeps', JSON.stringify(spec), { 'content-type': 'application/json' }));
    const jobs = await json<{ jobs: { prompt: string }[] }>(await call('GET', `/api/sweeps/${submitted.id}/jobs`));
    assert.deepEqual(jobs.jobs.map((j) => j.prompt), preview.samples.map((s) => s.prompt));

    const unknown = await call('POST', '/api/sweeps', JSON.stringify({ prompts: ['ok', 'a __nope__'], seeds: [1] }), { 'content-type': 'application/json' });
    assert.equal(unknown.status, 400);
    assert.deepEqual((await json<{ details: unknown[] }>(unknown)).details, [{ path: 'prompts.1', message: 'unknown wildcard list __nope__ (PUT /api/wildcards/nope creates it) (at character 2)' }]);
    const unbalanced = await call('POST', '/api/sweeps/preview', JSON.stringify({ prompts: ['a {b|c'], seeds: [1] }), { 'content-type': 'application/json' });
    assert.equal(unbalanced.status, 400);
  });
});

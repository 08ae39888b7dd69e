/**
 * POST /api/remix on the whole HTTP app (request guard and body limits
 * included), in process: the status codes of its contract, and the round
 * trip — an image stamped the way the gpu-node stamps a render gives back a
 * spec whose job has the original's renderKey.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import type { Hono } from 'hono';
import { addPngTextChunk, formatA1111Parameters, imageKey } from '@nightshift/common';
import { seededCoordinator, tempDir, type SeededCoordinator } from '@nightshift/devfarm';
import { expandSweep, parseSpec, type ExpandedJob } from '@nightshift/sweep';
import { createHttpApp } from './http.js';
import { Live } from './live.js';

const ORIGINAL = { prompts: ['a red circle'], axes: { style: ['', 'oil painting'] }, seeds: [7, 8], params: { width: 128, height: 64, steps: 12, guidance: 6.5, sampler: 'euler', tiling: false, strength: 0.35 } };

/** The gpu-node's stamp (worker.ts parametersText + addPngTextChunk) on a rendered job. */
function stamp(png: Buffer, job: ExpandedJob): Buffer {
  const { width, height, steps, guidance, ...extra } = job.params as { width: number; height: number; steps: number; guidance: number } & Record<string, string | number | boolean>;
  return addPngTextChunk(png, 'parameters', formatA1111Parameters({ prompt: job.prompt, seed: job.seed, width, height, steps, guidance, model: job.model, backend: job.backend, extra }));
}

describe('POST /api/remix', () => {
  let tmp: ReturnType<typeof tempDir>;
  let seeded: SeededCoordinator;
  let app: Hono;
  let blank: Buffer;
  let job: ExpandedJob;
  const bucket = new Map<string, Buffer>();

  before(async () => {
    tmp = tempDir();
    const storage = {
      get: async (key: string) => {
        const b = bucket.get(key);
        if (!b) throw Object.assign(new Error('NoSuchKey'), { code: 'NoSuchKey' });
        return b;
      },
    };
    seeded = seededCoordinator(tmp.dir, {}, storage);
    app = createHttpApp({ ...seeded.deps, hub: { ...seeded.deps.hub, connectedNodeIds: () => [] }, placement: { explain: () => [] }, live: new Live() });
    blank = await sharp({ create: { width: 128, height: 64, channels: 3, background: '#000' } }).png().toBuffer();
    job = expandSweep(parseSpec(ORIGINAL), 100)[3]!; // oil painting, seed 8
    bucket.set(imageKey(job.renderKey), stamp(blank, job));
  });
  after(() => {
    seeded.close();
    tmp.cleanup();
  });

  const post = (body: string | Uint8Array, type: string | undefined, path = '/api/remix', headers: Record<string, string> = {}) =>
    app.request(`http://127.0.0.1:8080${path}`, { method: 'POST', headers: { host: '127.0.0.1:8080', ...(type ? { 'content-type': type } : {}), ...headers }, body });
  const answer = async (res: Response) => (await res.json()) as { spec?: unknown; source?: string; notes?: string[]; issues?: unknown[]; error?: string; found?: string[] };

  test('a Nightshift render remixed: same spec, so the same renderKey for the same seed', async () => {
    const res = await post(new Uint8Array(stamp(blank, job)), 'image/png');
    assert.equal(res.status, 200);
    const body = await answer(res);
    assert.equal(body.source, 'nightshift');
    assert.equal(body.issues, undefined, 'a valid spec');
    const again = expandSweep(parseSpec(body.spec), 100);
    assert.equal(again.length, 1);
    assert.equal(again[0]!.seed, job.seed);
    assert.equal(again[0]!.renderKey, job.renderKey);
  });

  test('by bucket key: the stored image; bad keys 400, missing ones 404', async () => {
    const res = await post(JSON.stringify({ key: imageKey(job.renderKey) }), 'application/json');
    assert.equal(res.status, 200);
    assert.equal(expandSweep(parseSpec((await answer(res)).spec), 100)[0]!.renderKey, job.renderKey);
    assert.equal((await post(JSON.stringify({ key: '../secrets.png' }), 'application/json')).status, 400);
    assert.equal((await post(JSON.stringify({ key: `thumbs/${job.renderKey}.webp` }), 'application/json')).status, 400, 'not an image key');
    assert.equal((await post(JSON.stringify({}), 'application/json')).status, 400);
    assert.equal((await post(JSON.stringify({ key: imageKey('0'.repeat(64)) }), 'application/json')).status, 404);
  });

  test('422 for a PNG without settings, naming its chunks; 400 for bytes that are no PNG', async () => {
    const res = await post(new Uint8Array(addPngTextChunk(blank, 'Software', 'GIMP 2.10')), 'image/png');
    assert.equal(res.status, 422);
    const body = await answer(res);
    assert.deepEqual(body.found, ['Software']);
    assert.match(body.error ?? '', /"Software"/);
    assert.equal((await post('GIF89a not a png', 'image/png')).status, 400);
  });

  test('settings outside a sweep\'s limits come back with their issues, for editing', async () => {
    const res = await post(new Uint8Array(addPngTextChunk(blank, 'parameters', 'huge\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 4096x4096')), 'image/png');
    assert.equal(res.status, 200);
    const body = await answer(res);
    assert.equal(body.source, 'a1111');
    assert.ok(body.issues?.some((i) => (i as { path: string }).path === 'params.width'));
  });

  test('content types: 415 for anything but image/png or JSON; a cross-origin upload is refused', async () => {
    const res = await post('x', 'text/plain');
    assert.equal(res.status, 415);
    assert.match((await answer(res)).error ?? '', /image\/png/);
    assert.equal((await post(new Uint8Array(blank), 'image/jpeg')).status, 415);
    assert.equal((await post(new Uint8Array(stamp(blank, job)), 'image/png', '/api/remix', { origin: 'http://evil.example' })).status, 403);
    assert.equal((await post(new Uint8Array(blank), 'image/png', '/api/sweeps')).status, 415, 'other routes still take only JSON');
  });

  test('uploads up to 20 MB (413 beyond); every other route keeps its 1 MiB limit', async () => {
    const big = addPngTextChunk(stamp(blank, job), 'Comment', 'x'.repeat(3 * 1024 * 1024));
    assert.equal((await post(new Uint8Array(big), 'image/png')).status, 200, '3 MiB image');
    const tooBig = await post(new Uint8Array(21 * 1024 * 1024), 'image/png', '/api/remix', { 'content-length': String(21 * 1024 * 1024) });
    assert.equal(tooBig.status, 413);
    assert.match((await answer(tooBig)).error ?? '', /20 MB/);
    const sweep = JSON.stringify({ prompts: ['x'], seeds: [1], name: 'y'.repeat(2 * 1024 * 1024) });
    assert.equal((await post(sweep, 'application/json', '/api/sweeps', { 'content-length': String(sweep.length) })).status, 413);
    const keyBody = JSON.stringify({ key: 'k'.repeat(8 * 1024) });
    assert.equal((await post(keyBody, 'application/json', '/api/remix', { 'content-length': String(keyBody.length) })).status, 413, 'a key body is small');
  });
});

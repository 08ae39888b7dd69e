/**
 * Hostile callers against a real farm (nats-server, s3rver, coordinator and
 * one gpu-node as processes): each attack gets its answer code, the
 * coordinator answers an ordinary request right after, and nothing in
 * SQLite (the sweep list), S3 or the event stream changed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { createClient, SweepService } from '@nightshift/proto';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';
import { attack as attackFarm } from './helpers.js';

const COORDINATOR_MAIN = fileURLToPath(new URL('../../services/coordinator/src/main.ts', import.meta.url));

/** The expansion bomb: 2 KB of spec, a template repeating {prompt} 240 times over 1,000 axis values. */
const BOMB = {
  prompts: ['x'.repeat(1_990)],
  template: '{prompt}'.repeat(240),
  axes: { style: Array.from({ length: 1_000 }, (_, i) => `s${i}`) },
  seeds: { count: 1 },
};
const SSE_MAX = 3;
const ORDINARY = { prompts: ['a red circle'], seeds: { count: 2 }, params: { width: 64, height: 64, steps: 2 } };

describe('hostile callers', { timeout: 300_000 }, () => {
  let farm: Farm;
  let tmp: ReturnType<typeof tempDir>;

  before(async () => {
    tmp = tempDir('nightshift-hostile-');
    farm = await startFarm({ dir: tmp.dir, nodes: 1, indexer: false, env: { NIGHTSHIFT_SSE_MAX_CLIENTS: String(SSE_MAX) } });
    await waitForNodes(farm.apiUrl, 1);
  });

  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  const attack = <T>(run: () => Promise<T>) => attackFarm(farm, run);

  const postJson = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${farm.apiUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  test('the expansion bomb is refused with the field at fault, by submit, preview and gRPC', async () => {
    for (const path of ['/api/sweeps', '/api/sweeps/preview']) {
      const res = await attack(async () => {
        const r = await postJson(path, BOMB);
        return { status: r.status, body: (await r.json()) as { details: { path: string; message: string }[] } };
      });
      assert.equal(res.status, 400, path);
      assert.equal(res.body.details[0]!.path, 'template');
      assert.match(res.body.details[0]!.message, /more than the maximum of 4000/);
    }
    const client = createClient(SweepService, farm.grpcAddress, grpc.credentials.createInsecure());
    try {
      const err = await attack(() => client.submitSweep({ specJson: JSON.stringify(BOMB) }).then(() => assert.fail('accepted'), (e: unknown) => ({ e })));
      assert.equal((err.e as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT);
      assert.match((err.e as Error).message, /template: expands to up to/);
    } finally {
      client.close();
    }
  });

  test('long whitespace runs in prompts expand in linear time (the sweep is accepted)', async () => {
    // 1,000 axis values × a prompt that is nearly all spaces: seconds of regex work per submission before.
    const spaces = { prompts: [`a${' '.repeat(1_990)}b`], axes: { pad: Array.from({ length: 1_000 }, (_, i) => `${' , '.repeat(300)}${i}`) }, seeds: { count: 1 }, params: { width: 64, height: 64, steps: 1 } };
    const res = await fetch(`${farm.apiUrl}/api/sweeps/preview`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spaces) });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { jobs: number; samples: { prompt: string }[] };
    assert.equal(body.jobs, 1_000);
    assert.equal(body.samples[0]!.prompt, 'a b, 0');
  });

  test('a web page cannot create a sweep: text/plain, form posts and foreign origins are refused', async () => {
    const body = JSON.stringify(ORDINARY);
    const cases: [string, RequestInit, number][] = [
      ['text/plain (no-cors fetch)', { headers: { 'content-type': 'text/plain;charset=UTF-8' }, body }, 415],
      ['form-encoded', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `spec=${encodeURIComponent(body)}` }, 415],
      ['JSON from another origin', { headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body }, 403],
      ['text/plain from another origin', { headers: { 'content-type': 'text/plain', origin: 'http://evil.example' }, body }, 403],
    ];
    for (const [what, init, code] of cases) {
      const res = await attack(() => fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', ...init }));
      assert.equal(res.status, code, what);
    }
    const cancel = await attack(() => fetch(`${farm.apiUrl}/api/sweeps/anything/cancel`, { method: 'POST', headers: { origin: 'http://evil.example' } }));
    assert.equal(cancel.status, 403);
  });

  test('DNS rebinding: a request naming another host is misdirected (421), reads included', async () => {
    const { hostname, port } = new URL(farm.apiUrl);
    const asEvil = (path: string, init: RequestInit = {}) =>
      new Promise<number>((resolve, reject) => {
        // fetch() will not send a Host it did not resolve; node:http will.
        const req = httpRequest({ host: hostname, port, path, method: init.method ?? 'GET', headers: { host: `evil.example:${port}`, 'content-type': 'application/json' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end(init.body as string | undefined);
      });
    assert.equal(await attack(async () => ({ code: await asEvil('/api/sweeps') })).then((r) => r.code), 421);
    assert.equal(await attack(async () => ({ code: await asEvil('/api/sweeps', { method: 'POST', body: JSON.stringify(ORDINARY) }) })).then((r) => r.code), 421);
    assert.equal((await fetch(`${farm.apiUrl}/api/sweeps`)).status, 200, 'the loopback address itself is fine');
  });

  test('every route has a body limit: an oversized body gets 413 and changes nothing', async () => {
    const big = (n: number) => JSON.stringify({ priority: 1, pad: 'x'.repeat(n) });
    const cases: [string, number][] = [
      ['/api/sweeps/anything/priority', 64 * 1024],
      ['/api/sweeps/anything/cancel', 2 * 1024 * 1024],
      ['/api/sweeps', 2 * 1024 * 1024],
      ['/api/upscale', 2 * 1024 * 1024],
    ];
    for (const [path, size] of cases) {
      const res = await attack(async () => ({ status: await postRaw(farm.apiUrl, path, big(size)) }));
      assert.equal(res.status, 413, path);
    }
  });

  test('the coordinator will not listen beyond loopback without tokens, and says which setting', async () => {
    const env: Record<string, string | undefined> = { ...process.env, ...farm.env, NIGHTSHIFT_HTTP_HOST: '0.0.0.0', NIGHTSHIFT_HTTP_PORT: '0', NIGHTSHIFT_GRPC_PORT: '0', NIGHTSHIFT_DATA_DIR: `${tmp.dir}/refused` };
    delete env.NIGHTSHIFT_API_TOKEN;
    const run = (extra: Record<string, string>) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', COORDINATOR_MAIN], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d));
        child.stderr.on('data', (d: Buffer) => (out += d));
        // A coordinator that does start is stopped at once; the test then fails on its exit code.
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.on('exit', (code) => {
          clearTimeout(timer);
          resolve({ code, out });
        });
      });
    const open = await run({});
    assert.equal(open.code, 1, open.out);
    assert.match(open.out, /refusing to start: NIGHTSHIFT_HTTP_HOST is 0\.0\.0\.0, which is not loopback, and NIGHTSHIFT_API_TOKEN is not set/);
    const apiOnly = await run({ NIGHTSHIFT_API_TOKEN: 'a-token' });
    assert.equal(apiOnly.code, 1, apiOnly.out);
    assert.match(apiOnly.out, /no node token is \(NIGHTSHIFT_NODE_TOKEN/);
  });
  test('lists answer a page at a time', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await postJson('/api/sweeps', { ...ORDINARY, name: `page ${i}` });
      ids.push(((await r.json()) as { id: string }).id);
    }
    const first = (await (await fetch(`${farm.apiUrl}/api/sweeps?limit=2`)).json()) as { sweeps: { id: string }[]; total: number; nextOffset: number | null };
    assert.equal(first.sweeps.length, 2);
    assert.equal(first.total, 3);
    assert.equal(first.nextOffset, 2);
    const rest = (await (await fetch(`${farm.apiUrl}/api/sweeps?offset=2&limit=2`)).json()) as { sweeps: { id: string }[]; nextOffset: number | null };
    assert.equal(rest.sweeps.length, 1);
    assert.equal(rest.nextOffset, null);
    assert.deepEqual(new Set([...first.sweeps, ...rest.sweeps].map((s) => s.id)), new Set(ids));
    const jobs = (await (await fetch(`${farm.apiUrl}/api/sweeps/${ids[0]}/jobs?limit=1`)).json()) as { jobs: { index: number }[]; total: number; nextOffset: number | null };
    assert.deepEqual([jobs.jobs.length, jobs.jobs[0]!.index, jobs.total, jobs.nextOffset], [1, 0, 2, 1]);
    for (const bad of ['limit=0', 'limit=100000', 'offset=-1', 'limit=abc']) assert.equal((await fetch(`${farm.apiUrl}/api/sweeps?${bad}`)).status, 400, bad);
  });

  test(`live clients are capped (${SSE_MAX}); past the cap, 503`, async () => {
    const streams = await Promise.all(Array.from({ length: SSE_MAX }, () => openEvents(farm.apiUrl)));
    try {
      const over = await fetch(`${farm.apiUrl}/api/events`);
      assert.equal(over.status, 503);
      assert.match(((await over.json()) as { error: string }).error, /too many live clients/);
    } finally {
      for (const s of streams) s.abort();
    }
    // A slot frees when a client goes.
    await waitFor('a live-client slot to free', async () => {
      const ctl = new AbortController();
      const res = await fetch(`${farm.apiUrl}/api/events`, { signal: ctl.signal });
      ctl.abort();
      return res.status === 200;
    }, 5_000, 100);
  });

  test('SIGTERM with a live SSE client and a WatchSweep open: the coordinator exits by itself within 5 s', async () => {
    const sse = await openEvents(farm.apiUrl);
    const id = ((await (await postJson('/api/sweeps', { ...ORDINARY, seeds: { count: 500 } })).json()) as { id: string }).id;
    const client = createClient(SweepService, farm.grpcAddress, grpc.credentials.createInsecure());
    const watch = client.watchSweep({ id });
    const watchEnded = new Promise<void>((resolve) => {
      watch.on('end', () => resolve());
      watch.on('error', () => resolve());
    });
    // The watch is open once its first snapshot arrives (it is sent at once).
    const opened = new Promise((r) => watch.once('data', r));
    watch.on('data', () => {});
    try {
      await opened;
      farm.coordinator.child.kill('SIGTERM');
      const code = await Promise.race([farm.coordinator.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5_000))]);
      assert.equal(code, 0, `the coordinator ${code === 'hung' ? 'was still running 5 s after SIGTERM' : `exited with ${code}`}`);
      await watchEnded;
      assert.equal(await sse.ended, true, 'the SSE stream was ended by the server');
    } finally {
      sse.abort();
      client.close();
    }
  });
});

/**
 * Announces a body of `size` bytes and sends only its first bytes: the
 * server must answer from the announced length, before reading the body
 * (a client that waits for the answer sees it; one that keeps writing a
 * refused body may see the connection reset instead, as with any server).
 */
function postRaw(apiUrl: string, path: string, body: string): Promise<number> {
  const { hostname, port } = new URL(apiUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', (err) => reject(err));
    req.write(body.slice(0, 1024));
  });
}

/** An open GET /api/events: resolves once the server has answered; `ended` resolves when the server closes it. */
async function openEvents(apiUrl: string): Promise<{ abort(): void; ended: Promise<boolean> }> {
  const ctl = new AbortController();
  const res = await fetch(`${apiUrl}/api/events`, { signal: ctl.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const ended = (async () => {
    try {
      for (;;) if ((await reader.read()).done) return true;
    } catch {
      return false;
    }
  })();
  return { abort: () => ctl.abort(), ended };
}

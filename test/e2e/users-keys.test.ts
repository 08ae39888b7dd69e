/**
 * People and keys on a real farm (nats-server, s3rver, coordinator and a
 * gpu-node as processes; issue 16): keys made and revoked with the CLI, a
 * user's things invisible to another (every owner-scoped route of the
 * router, walked from its own route list, so a new route cannot be
 * forgotten), the daily image quota, and a revoked key refused at once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { main } from '@nightshift/cli';
import { Storage } from '@nightshift/common';
import { createHttpApp, Live } from '@nightshift/coordinator';
import { createClient, SweepService } from '@nightshift/proto';
import { seededCoordinator, startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

const ADMIN = 'farm-admin-token-for-the-users-test';
const SPEC = { name: 'alice-castles', prompts: ['a castle'], seeds: { count: 4 }, params: { width: 64, height: 64, steps: 4 } };

/**
 * What bob (a user) gets from each route with one of alice's things in its
 * parameters, and what the admin gets from the same request (which proves
 * the thing exists: bob's 404 is the ownership check, not a wrong id).
 * Every route of the router with a parameter must be here.
 */
type Expectation = { bob: number; admin: number } | { public: string };
const TABLE: Record<string, Expectation> = {
  'GET /api/sweeps/:id': { bob: 404, admin: 200 },
  'GET /api/sweeps/:id/jobs': { bob: 404, admin: 200 },
  'GET /api/sweeps/:id/images': { bob: 404, admin: 200 },
  'POST /api/sweeps/:id/cancel': { bob: 404, admin: 200 }, // alice's sweep is done by now: a no-op
  'POST /api/sweeps/:id/pause': { bob: 404, admin: 409 },
  'POST /api/sweeps/:id/resume': { bob: 404, admin: 409 },
  'POST /api/sweeps/:id/priority': { bob: 404, admin: 200 },
  'GET /api/sweeps/:id/best': { bob: 404, admin: 503 }, // the indexer is not running: passed on, unanswered
  'GET /api/images/:key{.+}': { bob: 404, admin: 503 },
  'PUT /api/favorites/:key{.+}': { bob: 404, admin: 503 },
  'DELETE /api/favorites/:key{.+}': { bob: 404, admin: 503 },
  'GET /api/gallery/:key': { bob: 404, admin: 200 },
  'GET /files/:prefix/:name': { bob: 404, admin: 200 },
  'GET /ui/files/:prefix/:name': { bob: 404, admin: 200 },
  'GET /api/wildcards/:name': { bob: 404, admin: 200 },
  'PUT /api/wildcards/:name': { bob: 404, admin: 200 },
  'DELETE /api/wildcards/:name': { bob: 404, admin: 204 },
  'GET /api/webhooks/:id/deliveries': { bob: 404, admin: 200 },
  'DELETE /api/webhooks/:id': { bob: 404, admin: 204 },
  'DELETE /api/shares/:id': { bob: 404, admin: 204 },
  'DELETE /api/keys/:name': { bob: 404, admin: 204 },
  'POST /api/nodes/:id/pause': { bob: 403, admin: 200 },
  'POST /api/nodes/:id/resume': { bob: 403, admin: 200 },
  // The registry is the farm's: anyone reads it (the same answer for everyone), only an admin deletes.
  'GET /api/models/:ref': { bob: 404, admin: 404 },
  'DELETE /api/models/:name': { bob: 403, admin: 404 },
  'GET /ui/sweeps/:id': { public: 'the page shell only (no data: the page reads the API with the visitor’s key)' },
  'GET /s/:token': { public: 'a share link is its own signed capability (shares-public.ts)' },
  'GET /s/:token/': { public: 'a share link is its own signed capability' },
  'GET /s/:token/images/:name': { public: 'a share link is its own signed capability' },
  'GET /s/:token/thumbs/:name': { public: 'a share link is its own signed capability' },
};

/**
 * Every route without a parameter, and whose things it reads or makes. A
 * new one fails the test until it is classified here (a listing of owned
 * things is also checked for bob below), so a listing cannot forget the
 * owner filter unnoticed either.
 */
const UNPARAMETERIZED: Record<string, string> = {
  'GET /healthz': 'open: no data',
  'POST /api/sweeps': "makes the caller's own; quota; lists only the caller's wildcards (checked)",
  'GET /api/sweeps': 'owner-filtered (checked)',
  'POST /api/upscale': "the caller's own images or sweep only (checked)",
  'POST /api/keys': 'admins only (checked)',
  'GET /api/keys': 'admins only (checked)',
  'GET /api/me': "the caller's own",
  'POST /api/remix': "upload: the caller's file; by key: the caller's own images (checked)",
  'GET /api/models': "the farm's registry",
  'GET /api/wildcards': 'owner-filtered (checked)',
  'POST /api/webhooks': "makes the caller's own",
  'GET /api/webhooks': 'owner-filtered (checked)',
  'POST /api/albums': "the caller's own images (checked)",
  'POST /api/albums/zip': "the caller's own sweep (checked)",
  'POST /api/shares': "the caller's own sweep (checked)",
  'GET /api/shares': 'owner-filtered (checked)',
  'GET /api/nodes': "the farm's nodes; current jobs: the caller's own (keys-safety.test.ts)",
  'GET /api/events': "the caller's sweeps' events and the nodes' (users.test.ts)",
  'GET /api/search': "filtered to the caller's images by the indexer proxy",
  'GET /api/favorites': "the caller's own stars (indexer-proxy.ts)",
  'POST /api/reindex': 'admins only',
  'GET /api/best': "filtered to the caller's images by the indexer proxy",
  'GET /': 'page shell',
  'GET /ui': 'page shell',
  'GET /ui/': 'page shell',
  'GET /ui/submit': 'page shell',
  'GET /ui/gallery': 'page shell',
  'GET /ui/nodes': 'page shell',
  'GET /ui/static/*': 'static assets',
  'POST /ui/session': "a cookie naming the caller (keys-safety.test.ts)",
  'POST /api/sweeps/preview': "lists only the caller's wildcards",
  'GET /api/gallery': 'owner-filtered (checked)',
};

interface Ids {
  sweep: string;
  image: string;
  wildcard: string;
  webhook: string;
  share: string;
  node: string;
}

/** The concrete path of a route for alice's things. */
function fill(path: string, ids: Ids): string {
  const [prefix, name] = ids.image.split('/') as [string, string];
  const byParam: Record<string, string> = {
    ':key{.+}': ids.image,
    ':key': name.replace(/\.png$/, ''), // the gallery's one-segment key: the render key
    ':prefix': prefix,
    ':name': path.startsWith('/api/wildcards') ? ids.wildcard : path.startsWith('/api/keys') ? 'carol' : path.startsWith('/api/models') ? 'no-such-model' : name,
    ':ref': 'no-such-model',
    ':id': path.startsWith('/api/webhooks') ? ids.webhook : path.startsWith('/api/shares') ? ids.share : path.startsWith('/api/nodes') ? ids.node : ids.sweep,
  };
  return path.replace(/:key\{\.\+\}|:[a-z]+/g, (p) => byParam[p] ?? assert.fail(`no value for ${p} in ${path}`));
}

describe('users and keys on a real farm', { timeout: 240_000 }, () => {
  let farm: Farm;
  let tmp: ReturnType<typeof tempDir>;
  const keys: Record<string, string> = {};

  before(async () => {
    tmp = tempDir();
    farm = await startFarm({ dir: tmp.dir, nodes: 1, env: { NIGHTSHIFT_API_TOKEN: ADMIN, NIGHTSHIFT_NODE_TOKEN: 'node-token-for-the-users-test', NIGHTSHIFT_WEBHOOK_ALLOW: '127.0.0.1' } });
    await waitForNodes(farm.apiUrl, 1, { authorization: `Bearer ${ADMIN}` });
  });
  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  const cli = async (token: string, ...args: string[]) => {
    let out = '';
    let err = '';
    const sink = (add: (s: string) => void) => new Writable({ write: (chunk: Buffer, _e, done) => (add(chunk.toString()), done()) });
    const code = await main(['node', 'nightshift', '--url', farm.apiUrl, '--token', token, ...args], { out: sink((s) => (out += s)), err: sink((s) => (err += s)), env: {} });
    return { code, out, err };
  };
  const call = (who: string, method: string, path: string, body?: unknown, type = 'application/json') =>
    fetch(`${farm.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${who}`, ...(body !== undefined ? { 'content-type': type } : {}) },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
  const json = async <T>(res: Response | Promise<Response>, status = 200): Promise<T> => {
    const r = await res;
    const text = await r.text();
    assert.equal(r.status, status, `${r.url}: ${text}`);
    return JSON.parse(text) as T;
  };

  test('keys are made with the CLI, shown once, and name their user', async () => {
    for (const [name, extra] of [['alice', ['--quota-images', '30/day']], ['bob', []], ['carol', []]] as const) {
      const r = await cli(ADMIN, 'keys', 'add', name, ...extra);
      assert.equal(r.code, 0, r.err);
      keys[name] = r.out.trim();
      assert.match(keys[name]!, /^nsk_[A-Za-z0-9_-]{43}$/);
    }
    const me = await json<{ user: string; admin: boolean; quota: Record<string, unknown> }>(call(keys.alice!, 'GET', '/api/me'));
    assert.deepEqual([me.user, me.admin], ['alice', false]);
    assert.deepEqual({ ...me.quota, resetsAt: undefined }, { imagesPerDay: 30, usedToday: 0, leftToday: 30, resetsAt: undefined });
    assert.match(String(me.quota.resetsAt), /T00:00:00\.000Z$/);
    assert.deepEqual(await json(call(ADMIN, 'GET', '/api/me')), { user: 'local', admin: true, quota: null });
    assert.equal((await call(keys.bob!, 'GET', '/api/keys')).status, 404, 'a user does not see the keys');
    const listed = await cli(ADMIN, '--json', 'keys', 'list');
    assert.deepEqual(
      (JSON.parse(listed.out) as { keys: { name: string; active: boolean }[] }).keys.map((k) => [k.name, k.active]),
      [['local', false], ['alice', true], ['bob', true], ['carol', true]],
    );
  });

  test("bob can neither see nor touch alice's things: every owner-scoped route of the router, one by one", async () => {
    // alice's things: a rendered sweep, a wildcard list, a webhook, a share link.
    const { id: sweep } = await json<{ id: string }>(call(keys.alice!, 'POST', '/api/sweeps', SPEC), 201);
    await waitFor('alice’s sweep to finish', async () => (await json<{ status: string }>(call(keys.alice!, 'GET', `/api/sweeps/${sweep}`))).status === 'done', 120_000);
    const images = await json<{ images: { key: string }[] }>(call(keys.alice!, 'GET', `/api/sweeps/${sweep}/images`));
    assert.equal(images.images.length, 4);
    await json(call(keys.alice!, 'PUT', '/api/wildcards/alicelist', 'red\ngreen\n', 'text/plain'));
    const { id: webhook } = await json<{ id: string }>(call(keys.alice!, 'POST', '/api/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['sweep.finished'], secret: 's' }), 201);
    const { id: share } = await json<{ id: string }>(call(keys.alice!, 'POST', '/api/shares', { sweep, expiresIn: '1h' }), 201);
    const ids: Ids = { sweep, image: images.images[0]!.key, wildcard: 'alicelist', webhook, share, node: 'node-0' };

    // The router's own list: the same app the coordinator serves (a bucket, so the bucket's routes are there too).
    const storage = new Storage({ endpoint: farm.env.NIGHTSHIFT_S3_ENDPOINT!, accessKey: farm.env.NIGHTSHIFT_S3_ACCESS_KEY!, secretKey: farm.env.NIGHTSHIFT_S3_SECRET_KEY!, bucket: 'nightshift' });
    const seeded = seededCoordinator(tmp.dir, {}, storage);
    const app = createHttpApp({ ...seeded.deps, hub: { ...seeded.deps.hub, connectedNodeIds: () => [] }, placement: { explain: () => [] }, live: new Live() });
    const routes = [...new Set(app.routes.filter((r) => r.method !== 'ALL' && r.path.includes('/:')).map((r) => `${r.method} ${r.path}`))];
    seeded.close();
    const unlisted = routes.filter((r) => !(r in TABLE));
    assert.deepEqual(unlisted, [], 'routes with a parameter that the table of expected behaviour does not list: add each with what a non-owner gets');
    assert.ok(routes.length >= 25, `the route list looks incomplete: ${routes.length}`);
    const plain = [...new Set(app.routes.filter((r) => r.method !== 'ALL' && !r.path.includes('/:')).map((r) => `${r.method} ${r.path}`))];
    assert.deepEqual(plain.filter((r) => !(r in UNPARAMETERIZED)), [], 'routes without a parameter that UNPARAMETERIZED does not classify: add each with whose things it reads');

    const bodyFor = (route: string) => (route.startsWith('PUT /api/wildcards') ? { body: 'bob was here\n', type: 'text/plain' } : route.endsWith('/priority') ? { body: { priority: 7 } } : {});
    const send = (who: string, route: string) => {
      const [method, path] = route.split(' ') as [string, string];
      const b = bodyFor(route);
      return call(who, method, fill(path, ids), b.body, b.type);
    };
    const scoped = routes.filter((r) => !('public' in TABLE[r]!));
    for (const route of scoped) {
      const res = await send(keys.bob!, route);
      assert.equal(res.status, (TABLE[route] as { bob: number }).bob, `${route} as bob: ${await res.text()}`);
    }
    // Nothing bob sent changed anything of alice's.
    const after = await json<{ status: string; priority: number }>(call(keys.alice!, 'GET', `/api/sweeps/${sweep}`));
    assert.deepEqual([after.status, after.priority], ['done', 0]);
    assert.deepEqual((await json<{ lines: string[] }>(call(keys.alice!, 'GET', '/api/wildcards/alicelist'))).lines, ['red', 'green']);
    assert.deepEqual((await json<{ webhooks: { id: string }[] }>(call(keys.alice!, 'GET', '/api/webhooks'))).webhooks.map((w) => w.id), [webhook]);
    assert.equal((await json<{ shares: unknown[] }>(call(keys.alice!, 'GET', '/api/shares'))).shares.length, 1);
    assert.equal((await call(keys.carol!, 'GET', '/api/me')).status, 200, "carol's key was not revoked by bob");
    // bob's listings hold nothing of alice's.
    assert.deepEqual(await json(call(keys.bob!, 'GET', '/api/sweeps')), { sweeps: [], total: 0, offset: 0, limit: 200, nextOffset: null });
    assert.deepEqual((await json<{ webhooks: unknown[] }>(call(keys.bob!, 'GET', '/api/webhooks'))).webhooks, []);
    assert.deepEqual((await json<{ wildcards: unknown[] }>(call(keys.bob!, 'GET', '/api/wildcards'))).wildcards, []);
    assert.deepEqual((await json<{ shares: unknown[] }>(call(keys.bob!, 'GET', '/api/shares'))).shares, []);
    // Nor upscale them (another's sweep or image is as unknown as a missing one).
    const upscaleRefusal = async (body: unknown) => JSON.stringify(await json<{ details: unknown[] }>(call(keys.bob!, 'POST', '/api/upscale', body), 400));
    assert.match(await upscaleRefusal({ sweep }), /no such sweep/);
    assert.match(await upscaleRefusal({ keys: [ids.image] }), /no rendered image with key/);
    assert.equal((await json<{ total: number }>(call(keys.bob!, 'GET', '/api/gallery'))).total, 0);
    assert.equal((await json<{ total: number }>(call(keys.alice!, 'GET', '/api/gallery'))).total, 4);
    // Nor can bob share or download alice's images as an album.
    assert.equal((await call(keys.bob!, 'POST', '/api/shares', { sweep, expiresIn: '1h' })).status, 404);
    assert.equal((await call(keys.bob!, 'POST', '/api/albums', { keys: [ids.image] })).status, 400);
    assert.equal((await call(keys.bob!, 'POST', '/api/albums/zip', { sweep })).status, 404);
    assert.equal((await call(keys.alice!, 'POST', '/api/albums', { keys: [ids.image] })).status, 200);
    // Nor read the settings of alice's image through a remix by key.
    assert.equal((await call(keys.bob!, 'POST', '/api/remix', { key: ids.image })).status, 404);
    assert.equal((await call(keys.alice!, 'POST', '/api/remix', { key: ids.image })).status, 200);
    // A spec of bob's cannot read alice's list either.
    assert.equal((await call(keys.bob!, 'POST', '/api/sweeps', { prompts: ['__alicelist__'], seeds: [1] })).status, 400);

    // gRPC SweepService: the same rule.
    const grpcClient = createClient(SweepService, farm.env.NIGHTSHIFT_COORDINATOR!);
    try {
      const asBob = new grpc.Metadata();
      asBob.set('authorization', `Bearer ${keys.bob}`);
      await assert.rejects(grpcClient.getSweep({ id: sweep }, asBob), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
      await assert.rejects(grpcClient.cancelSweep({ id: sweep }, asBob), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
      assert.equal((await grpcClient.listSweeps({}, asBob)).sweeps.length, 0);
    } finally {
      grpcClient.close();
    }

    // The admin's same requests find each thing (bob's 404s were the ownership check, not a wrong id).
    // Deletions last, so each thing is still there when a route reads it.
    for (const route of [...scoped.filter((r) => !r.startsWith('DELETE')), ...scoped.filter((r) => r.startsWith('DELETE'))]) {
      const res = await send(ADMIN, route);
      assert.equal(res.status, (TABLE[route] as { admin: number }).admin, `${route} as the admin: ${await res.text()}`);
    }
  });

  test('a submission over the daily image quota is refused with 429, naming the quota and what is left', async () => {
    const res = await call(keys.alice!, 'POST', '/api/sweeps', { ...SPEC, seeds: { count: 27 } });
    const body = (await res.json()) as { error: string; quota: { imagesPerDay: number; leftToday: number } };
    assert.equal(res.status, 429);
    assert.match(body.error, /daily image quota/);
    assert.match(body.error, /27 image\(s\) but 26 of the quota of 30 a day are left/);
    assert.deepEqual([body.quota.imagesPerDay, body.quota.leftToday], [30, 26]);
    const ok = await json<{ id: string }>(call(keys.alice!, 'POST', '/api/sweeps', { ...SPEC, prompts: ['a smaller castle'], seeds: { count: 2 } }), 201);
    assert.ok(ok.id);
    assert.equal((await json<{ quota: { leftToday: number } }>(call(keys.alice!, 'GET', '/api/me'))).quota.leftToday, 24);
  });

  test('a revoked key is refused by the very next request, over HTTP and gRPC', async () => {
    assert.equal((await call(keys.bob!, 'GET', '/api/me')).status, 200);
    const r = await cli(ADMIN, 'keys', 'revoke', 'bob');
    assert.equal(r.code, 0, r.err);
    assert.equal((await call(keys.bob!, 'GET', '/api/me')).status, 401);
    assert.equal((await call(keys.bob!, 'POST', '/api/sweeps', SPEC)).status, 401);
    const grpcClient = createClient(SweepService, farm.env.NIGHTSHIFT_COORDINATOR!);
    try {
      const asBob = new grpc.Metadata();
      asBob.set('authorization', `Bearer ${keys.bob}`);
      await assert.rejects(grpcClient.listSweeps({}, asBob), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED);
    } finally {
      grpcClient.close();
    }
    const whoami = await cli(keys.bob!, 'whoami');
    assert.equal(whoami.code, 4, 'the CLI exits 4 for a refused key');
    assert.match(whoami.err, /revoked key is refused/);
  });
});

/**
 * The dashboard's server side without a farm: spec preview, gallery paging
 * and favorites, image detail, the image cookie, static assets and pages.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { Hono } from 'hono';
import { serve, type ServerType } from '@hono/node-server';
import { seededCoordinator, tempDir, type SeededCoordinator } from '@nightshift/devfarm';
import { createDashboard } from './index.js';
import { bearerMatches } from '@nightshift/common';
import { issueFilesCookie, verifyFilesCookie } from './session.js';

const SPEC = { name: 'colours', prompts: ['a red circle', 'a blue square'], axes: { style: ['', 'watercolor'] }, seeds: { start: 0, count: 3 }, params: { width: 64, height: 64, steps: 4 } };

describe('image cookie', () => {
  test('verifies only its own, unexpired, untampered values', () => {
    const now = Date.now();
    const c = issueFilesCookie('tok', 'ann.b', now + 60_000);
    assert.equal(verifyFilesCookie('tok', c, now), 'ann.b', 'names its user');
    assert.equal(verifyFilesCookie('tok', c, now + 61_000), undefined, 'expired');
    assert.equal(verifyFilesCookie('other', c, now), undefined, 'another token');
    const extended = c.replace(/\.\d+\./, `.${now + 9e9}.`);
    assert.notEqual(extended, c);
    assert.equal(verifyFilesCookie('tok', extended, now), undefined, 'extended expiry');
    const otherUser = c.replace('v2.ann.b.', 'v2.ann.');
    assert.notEqual(otherUser, c);
    assert.equal(verifyFilesCookie('tok', otherUser, now), undefined, 'another user');
    const unscoped = c.replace('v2.ann.b.', 'v1.');
    assert.equal(verifyFilesCookie('tok', unscoped, now), undefined, 'a v1 cookie (no user) is refused');
    assert.throws(() => issueFilesCookie('tok', 'Not.A.User', now), /not a user name/);
    assert.ok(!verifyFilesCookie('tok', undefined, now));
    assert.ok(!verifyFilesCookie('tok', 'garbage', now));
    assert.ok(!c.includes('tok'));
  });

  test('bearer check', () => {
    assert.ok(bearerMatches('tok', 'Bearer tok'));
    assert.ok(bearerMatches('tok', 'bearer  tok'));
    assert.ok(!bearerMatches('tok', 'Bearer tok2'));
    assert.ok(!bearerMatches('tok', 'tok'));
    assert.ok(!bearerMatches('tok', undefined));
  });
});

describe('dashboard routes', () => {
  let tmp: ReturnType<typeof tempDir>;
  let seeded: SeededCoordinator;
  let app: Hono;
  let sweepA: string;
  let sweepB: string;
  let indexer: ServerType;
  const favorites = new Set<string>();

  before(async () => {
    tmp = tempDir();
    // A stand-in indexer that only answers GET /api/favorites.
    const fake = new Hono().get('/api/favorites', (c) => c.json({ favorites: [...favorites].map((renderKey) => ({ renderKey })) }));
    indexer = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: fake.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    seeded = seededCoordinator(tmp.dir, { NIGHTSHIFT_INDEXER_URL: `http://127.0.0.1:${(indexer.address() as AddressInfo).port}`, NIGHTSHIFT_MAX_JOBS: 1000 }, { get: async (key) => Buffer.from(`bytes of ${key}`) });
    sweepA = await seeded.addRenderedSweep(SPEC, 'node-a');
    sweepB = await seeded.addRenderedSweep({ ...SPEC, name: 'more', prompts: ['green stripes'] }, 'node-b');
    app = createDashboard(seeded.deps);
  });

  after(async () => {
    seeded?.close();
    await new Promise((r) => indexer?.close(r));
    tmp?.cleanup();
  });

  const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as Record<string, unknown> });

  test('preview counts jobs and samples final prompts, from JSON or pasted YAML', async () => {
    const viaJson = await json(await app.request('/api/sweeps/preview', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(SPEC) }));
    assert.equal(viaJson.status, 200);
    assert.equal(viaJson.body.jobs, 12);
    assert.equal(viaJson.body.prompts, 4);
    assert.equal(viaJson.body.seeds, 3);
    assert.deepEqual((viaJson.body.samples as { prompt: string }[]).map((s) => s.prompt), ['a red circle', 'a red circle, watercolor', 'a blue square', 'a blue square, watercolor']);
    const yaml = 'prompts:\n  - a red circle\naxes:\n  style: ["", watercolor]\nseeds: [1, 2]\n';
    const viaYaml = await json(await app.request('/api/sweeps/preview', { method: 'POST', headers: { 'content-type': 'text/yaml' }, body: yaml }));
    assert.equal(viaYaml.status, 200);
    assert.equal(viaYaml.body.jobs, 4);
    assert.deepEqual(viaYaml.body.input, { prompts: ['a red circle'], axes: { style: ['', 'watercolor'] }, seeds: [1, 2] });
  });

  test('preview errors have field paths; YAML syntax errors have lines; too-large sweeps are refused', async () => {
    const bad = await json(await app.request('/api/sweeps/preview', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...SPEC, params: { width: 100 } }) }));
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.details, [{ path: 'params.width', message: 'must be a multiple of 8' }]);
    const syntax = await json(await app.request('/api/sweeps/preview', { method: 'POST', headers: { 'content-type': 'text/yaml' }, body: 'prompts: [a\nseeds: 1\n' }));
    assert.equal(syntax.status, 400);
    assert.match(String((syntax.body.details as { message: string }[])[0]!.message), /^line \d+, column \d+: /);
    const big = await json(await app.request('/api/sweeps/preview', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompts: ['x'], seeds: { count: 5000 } }) }));
    assert.equal(big.status, 400);
    assert.match(String(big.body.error), /expands to 5000 jobs, more than the maximum of 1000/);
  });

  test('gallery pages through rendered images newest first, filters by sweep, marks favorites', async () => {
    const all = await json(await app.request('/api/gallery?limit=5'));
    assert.equal(all.status, 200);
    assert.equal(all.body.total, 18);
    const images = all.body.images as { renderKey: string; sweepId: string; thumbUrl: string; favorite: boolean | null }[];
    assert.equal(images.length, 5);
    assert.equal(images[0]!.sweepId, sweepB, 'newest first');
    assert.match(images[0]!.thumbUrl, /^\/files\/thumbs\/[0-9a-f]{64}\.webp$/);
    const page2 = (await json(await app.request('/api/gallery?limit=5&offset=5'))).body.images as { renderKey: string }[];
    assert.equal(new Set([...images, ...page2].map((i) => i.renderKey)).size, 10, 'pages do not overlap');
    const onlyA = await json(await app.request(`/api/gallery?sweep=${sweepA}`));
    assert.equal(onlyA.body.total, 12);

    favorites.add(images[2]!.renderKey);
    const marked = (await json(await app.request('/api/gallery?limit=5'))).body.images as { renderKey: string; favorite: boolean }[];
    assert.deepEqual(marked.map((i) => i.favorite), [false, false, true, false, false]);
    const favs = await json(await app.request('/api/gallery?favorites=true'));
    assert.equal(favs.body.total, 1);
    assert.equal((favs.body.images as { renderKey: string }[])[0]!.renderKey, images[2]!.renderKey);
    assert.equal((await json(await app.request('/api/gallery?limit=0'))).status, 400);
    assert.equal((await json(await app.request('/api/gallery?offset=-1'))).status, 400);
  });

  test('image detail has prompt, seed, params, node, time and the next free seed', async () => {
    const first = ((await json(await app.request(`/api/gallery?sweep=${sweepA}&limit=100`))).body.images as { renderKey: string; prompt: string; seed: number }[]).find(
      (i) => i.prompt === 'a red circle, watercolor' && i.seed === 1,
    )!;
    const d = await json(await app.request(`/api/gallery/${first.renderKey}`));
    assert.equal(d.status, 200);
    assert.equal(d.body.prompt, 'a red circle, watercolor');
    assert.equal(d.body.seed, 1);
    assert.equal(d.body.node, 'node-a');
    assert.equal(d.body.sweepName, 'colours');
    assert.deepEqual(d.body.params, { guidance: 7.5, height: 64, steps: 4, width: 64 });
    assert.equal(d.body.nextSeed, 3);
    assert.match(String(d.body.finishedAt), /^2026-/);
    assert.equal((await app.request(`/api/gallery/${'0'.repeat(64)}`)).status, 404);
  });

  test('pages are server-rendered, compressed, with a strict CSP; assets are cached by version', async () => {
    for (const path of ['/ui/', '/ui/submit', '/ui/gallery', '/ui/nodes', `/ui/sweeps/${sweepA}`]) {
      const res = await app.request(path, { headers: { 'accept-encoding': 'gzip' } });
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('content-encoding'), 'gzip');
      assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      const html = gunzipSync(Buffer.from(await res.arrayBuffer())).toString();
      assert.match(html, /<main id="main"/);
      assert.match(html, /<a class="skip" href="#main">/);
    }
    const sub = await (await app.request('/ui/submit')).text();
    for (const id of ['f-prompts', 'f-width', 'f-seed-count', 'spec-text']) assert.match(sub, new RegExp(`<label for="${id}">`), `${id} is labelled`);
    const evil = await (await app.request('/ui/sweeps/%22%3E%3Cscript%3E')).text();
    assert.ok(!evil.includes('"><script>'), 'ids are escaped');

    const v = /static\/([0-9a-f]{12})\/app\.js"/.exec(sub)![1]!;
    const js = await app.request(`/ui/static/${v}/app.js`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(js.status, 200);
    assert.match(js.headers.get('cache-control') ?? '', /immutable/);
    assert.equal(js.headers.get('content-encoding'), 'gzip');
    const etag = js.headers.get('etag')!;
    assert.equal((await app.request('/ui/static/app.js', { headers: { 'if-none-match': etag } })).status, 304);
    assert.equal((await app.request('/ui/static/nope.js')).status, 404);
    assert.equal((await app.request('/')).headers.get('location'), '/ui/');
  });

  test('without a token images are served directly', async () => {
    const res = await app.request(`/ui/files/thumbs/${'a'.repeat(64)}.webp`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), `bytes of thumbs/${'a'.repeat(64)}.webp`);
    assert.deepEqual(await (await app.request('/ui/session', { method: 'POST' })).json(), { auth: false });
  });

  test('with a token: the API wants the header, images want the cookie the session call sets', async () => {
    const locked = createDashboard({ ...seeded.deps, config: { ...seeded.deps.config, NIGHTSHIFT_API_TOKEN: 'sekrit' } });
    const img = `/ui/files/thumbs/${'b'.repeat(64)}.webp`;
    assert.equal((await locked.request('/api/gallery')).status, 401);
    assert.equal((await locked.request('/api/gallery', { headers: { authorization: 'Bearer sekrit' } })).status, 200);
    assert.equal((await locked.request(img)).status, 401);
    assert.equal((await locked.request('/ui/session', { method: 'POST', headers: { authorization: 'Bearer nope' } })).status, 401);
    const session = await locked.request('/ui/session', { method: 'POST', headers: { authorization: 'Bearer sekrit' } });
    assert.equal(session.status, 200);
    const cookie = session.headers.get('set-cookie')!;
    assert.match(cookie, /^nightshift_files=v2\.local\.\d+\.[A-Za-z0-9_-]{43}; Max-Age=3600; Path=\/ui\/files; HttpOnly; SameSite=Strict$/);
    const withCookie = await locked.request(img, { headers: { cookie: cookie.split(';')[0]! } });
    assert.equal(withCookie.status, 200);
    assert.equal(withCookie.headers.get('cache-control'), 'private, max-age=3600');
    assert.equal((await locked.request('/api/gallery', { headers: { cookie: cookie.split(';')[0]! } })).status, 401, 'the cookie does not open the API');
  });
});

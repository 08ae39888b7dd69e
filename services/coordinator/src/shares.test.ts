/**
 * Share links and album downloads through the real HTTP app (createHttpApp)
 * over a seeded coordinator database: what a link shows without the API
 * token, what it never opens, expiry and revocation, and the limits.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import AdmZip from 'adm-zip';
import type { Hono } from 'hono';
import { seededCoordinator, tempDir, type SeededCoordinator } from '@nightshift/devfarm';
import { createHttpApp } from './http.js';
import { Live } from './live.js';
import { createShares } from './shares.js';
import { asCaller } from './callers-test-helpers.js';
import { SHARE_SECRET_FILE } from './shares-token.js';
import { keyHash } from './callers.js';
import { createLogger } from '@nightshift/common';
import { randomBytes } from 'node:crypto';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';

const TOKEN = 'the-api-token';
const HOST = 'http://127.0.0.1:8080';
const SPEC = { name: 'share me', prompts: ['a red circle <script>alert(1)</script>', 'a blue square'], seeds: [1, 2], params: { width: 64, height: 64, steps: 2 } };

describe('share links', () => {
  let tmp: ReturnType<typeof tempDir>;
  let seeded: SeededCoordinator;
  let app: Hono;
  let sweepId: string;
  let otherSweep: string;
  const bucket = new Map<string, Buffer>();
  /** While set, the next bucket read waits for `until` (a download held open) and calls `reading`. */
  let hold: { until: Promise<void>; reading: () => void } | undefined;
  /** What GET /api/favorites answers, per X-Nightshift-User (the indexer keeps each user's stars). */
  let favorites: Record<string, string[]> = {};
  let indexer: Server;

  before(async () => {
    tmp = tempDir();
    // The indexer's one endpoint an album asks (the browser tests star images in a real one).
    indexer = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      const user = String(req.headers['x-nightshift-user'] ?? 'local');
      const fromCoordinator = req.headers.authorization === `Bearer ${TOKEN}`;
      res.end(JSON.stringify(req.url?.startsWith('/api/favorites') && fromCoordinator ? { favorites: (favorites[user] ?? []).map((renderKey) => ({ renderKey })) } : {}));
    });
    await new Promise<void>((resolve) => indexer.listen(0, '127.0.0.1', resolve));
    const storage = {
      get: async (key: string) => {
        const held = hold;
        if (held) {
          hold = undefined; // only the first read waits: a second download must not hang the test
          held.reading();
          await held.until;
        }
        const b = bucket.get(key);
        if (!b) throw Object.assign(new Error('NoSuchKey'), { code: 'NoSuchKey' });
        return b;
      },
    };
    seeded = seededCoordinator(tmp.dir, { NIGHTSHIFT_API_TOKEN: TOKEN, NIGHTSHIFT_INDEXER_URL: `http://127.0.0.1:${(indexer.address() as AddressInfo).port}` }, storage);
    sweepId = await seeded.addRenderedSweep(SPEC);
    otherSweep = await seeded.addRenderedSweep({ ...SPEC, name: 'not shared', prompts: ['a green triangle'] });
    for (const row of seeded.db.prepare('SELECT image_key, thumb_key FROM jobs').all() as { image_key: string; thumb_key: string }[]) {
      bucket.set(row.image_key, Buffer.from(`png ${row.image_key}`));
      bucket.set(row.thumb_key, Buffer.from(`webp ${row.thumb_key}`));
    }
    app = createHttpApp({ ...seeded.deps, hub: { dispatch: async () => {}, cancelJobs() {}, connectedNodeIds: () => [] }, placement: { explain: () => [] }, live: new Live() });
  });
  after(async () => {
    seeded.close();
    tmp.cleanup();
    await new Promise((resolve) => indexer.close(resolve));
  });

  const call = (path: string, init: { method?: string; body?: unknown; auth?: string | null } = {}) =>
    app.request(path.startsWith('http') ? path : `${HOST}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        host: '127.0.0.1:8080',
        ...(init.auth === null ? {} : { authorization: `Bearer ${init.auth ?? TOKEN}` }),
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  const keysOf = (sweep: string) => (seeded.db.prepare('SELECT render_key FROM jobs WHERE sweep_id = ? ORDER BY idx').all(sweep) as { render_key: string }[]).map((r) => r.render_key);
  const share = async (body: unknown) => {
    const res = await call('/api/shares', { method: 'POST', body });
    assert.equal(res.status, 201, await res.clone().text());
    return (await res.json()) as { id: string; url: string; expiresAt: string; images: number };
  };

  test('a link shows exactly the shared images without the API token, and nothing else', async () => {
    const s = await share({ sweep: sweepId, expiresIn: '1d' });
    assert.equal(s.images, 4);
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:8080\/s\/v1\.sh_[A-Za-z0-9_-]{16}\.\d+\.[A-Za-z0-9_-]{43}\/$/);
    assert.ok(Math.abs(Date.parse(s.expiresAt) - Date.now() - 86_400_000) < 60_000);
    const page = await call(s.url, { auth: null });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    const html = await page.text();
    assert.ok(!html.includes('<script>alert'), 'the prompt is escaped');
    assert.ok(html.includes('a red circle &lt;script&gt;'));
    const shown = [...html.matchAll(/src="thumbs\/([0-9a-f]{64})\.webp"/g)].map((m) => m[1]);
    assert.deepEqual(shown, keysOf(sweepId));
    assert.ok(!html.includes('upscaled/'), 'a share page offers images and thumbnails only');
    for (const rk of keysOf(sweepId)) {
      const img = await call(`${s.url}images/${rk}.png`, { auth: null });
      assert.equal(img.status, 200);
      assert.equal(img.headers.get('content-type'), 'image/png');
      assert.equal(await img.text(), `png images/${rk}.png`);
      assert.equal((await call(`${s.url}thumbs/${rk}.webp`, { auth: null })).status, 200);
    }
    // Not shared, not an image, not under images/ or thumbs/: the same 404.
    const other = keysOf(otherSweep)[0]!;
    for (const path of [`images/${other}.png`, `thumbs/${other}.webp`, `upscaled/${keysOf(sweepId)[0]}.png`, 'images/..%2F..%2Fshare-secret', `images/${keysOf(sweepId)[0]}.webp`, '..%2F..%2Fapi%2Fsweeps', 'album.json']) {
      assert.equal((await call(`${s.url}${path}`, { auth: null })).status, 404, path);
    }
    // A path that walks out of the share is the API's, which wants the API token.
    assert.equal((await call(`${s.url}../../api/sweeps`, { auth: null })).status, 401);
    // The link's token opens nothing of the API, in any place a token could go.
    const linkToken = /\/s\/([^/]+)\//.exec(s.url)![1]!;
    for (const path of ['/api/sweeps', `/api/sweeps/${sweepId}/images`, '/api/shares', `/files/images/${keysOf(sweepId)[0]}.png`]) {
      assert.equal((await call(path, { auth: linkToken })).status, 401, path);
      assert.equal((await call(path, { auth: null })).status, 401, path);
    }
    assert.equal((await call(`/s/${linkToken}`, { auth: null })).status, 302, 'the bare link goes to the page');
  });

  test('a revoked link is 404 at once; a forged or altered one is 404', async () => {
    const s = await share({ keys: keysOf(sweepId).slice(0, 2).map((k) => `images/${k}.png`), expiresIn: 3600 });
    assert.equal(s.images, 2);
    const listed = (await (await call('/api/shares')).json()) as { shares: { id: string; url: string; expired: boolean }[] };
    assert.equal(listed.shares.find((x) => x.id === s.id)?.url, s.url);
    const token = /\/s\/([^/]+)\//.exec(s.url)![1]!;
    const [v, id, exp, mac] = token.split('.');
    // The MAC's last character replaced by one it is not (a fixed 'A' left one MAC in 16 unchanged).
    const altered = `${mac!.slice(0, -1)}${mac!.endsWith('A') ? 'E' : 'A'}`;
    assert.notEqual(altered, mac);
    for (const forged of [`${v}.${id}.${Number(exp) + 1}.${mac}`, `${v}.${id}.${exp}.${altered}`, 'v1.sh_AAAAAAAAAAAAAAAA.1.x']) {
      assert.equal((await call(`/s/${forged}/`, { auth: null })).status, 404, forged);
    }
    assert.equal((await call(`/api/shares/${s.id}`, { method: 'DELETE' })).status, 204);
    assert.equal((await call(s.url, { auth: null })).status, 404);
    assert.equal((await call(`${s.url}images/${keysOf(sweepId)[0]}.png`, { auth: null })).status, 404);
    assert.equal((await call(`/api/shares/${s.id}`, { method: 'DELETE' })).status, 404);
  });

  test('an expired link is 404', async () => {
    let now = Date.now();
    // The share table reads expiry on the engine's clock: one over the same database on this test's.
    const engine = new SqliteEngine(new EngineStore(seeded.db, { now: () => now }));
    const parts = createShares({ ...seeded.deps, engine }, randomBytes(32), () => now);
    // The share routes alone, behind the local admin (what http.ts's caller check sets).
    const res = await asCaller(parts.api).request('http://127.0.0.1:8080/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sweep: sweepId, expiresIn: 60 }) });
    assert.equal(res.status, 201);
    const path = new URL(((await res.json()) as { url: string }).url).pathname.replace(/^\/s/, '');
    assert.equal((await parts.pages.request(`http://127.0.0.1:8080${path}`)).status, 200);
    now += 59_999;
    assert.equal((await parts.pages.request(`http://127.0.0.1:8080${path}`)).status, 200);
    now += 1;
    assert.equal((await parts.pages.request(`http://127.0.0.1:8080${path}`)).status, 404);
    assert.equal((await parts.pages.request(`http://127.0.0.1:8080${path}thumbs/${keysOf(sweepId)[0]}.webp`)).status, 404);
  });

  test('the signing secret is made once in the data folder, never the API token', () => {
    const file = join(tmp.dir, SHARE_SECRET_FILE);
    assert.ok(existsSync(file));
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test('clear 400s for bad requests, 404 for a missing sweep', async () => {
    const bad = async (body: unknown, re: RegExp, status = 400) => {
      const res = await call('/api/shares', { method: 'POST', body });
      const text = await res.text();
      assert.equal(res.status, status, text);
      assert.match(text, re);
    };
    await bad({ sweep: sweepId, expiresIn: 31 * 86_400 }, /from 10 seconds to 30 days/);
    await bad({ sweep: sweepId, expiresIn: 9 }, /from 10 seconds/);
    await bad({ sweep: sweepId, expiresIn: '2w' }, /a number of seconds, or text like/);
    await bad({ sweep: sweepId, keys: [keysOf(sweepId)[0]] }, /exactly one of/);
    await bad({ expiresIn: 60 }, /exactly one of/);
    await bad({ keys: Array.from({ length: 1001 }, () => keysOf(sweepId)[0]) }, /at most 1000 images/);
    await bad({ keys: ['../../etc/passwd'] }, /not an image key/);
    await bad({ keys: ['f'.repeat(64)] }, /no rendered image with key f{64}/);
    await bad({ sweep: 'sw_nope' }, /no such sweep/, 404);
    await bad({ sweep: sweepId, extra: 1 }, /invalid share/);
  });

  test('an album as JSON and as a .zip', async () => {
    const res = await call('/api/albums', { method: 'POST', body: { sweep: sweepId } });
    assert.equal(res.status, 200);
    const album = (await res.json()) as { title: string; images: { renderKey: string; prompt: string; params: { width: number } }[] };
    assert.equal(album.title, 'share me');
    assert.deepEqual(album.images.map((i) => i.renderKey), keysOf(sweepId));
    assert.equal(album.images[0]!.params.width, 64);
    const zipRes = await call('/api/albums/zip', { method: 'POST', body: { sweep: sweepId } });
    assert.equal(zipRes.status, 200);
    assert.equal(zipRes.headers.get('content-type'), 'application/zip');
    assert.match(zipRes.headers.get('content-disposition') ?? '', /attachment; filename="share-me\.zip"/);
    const zip = new AdmZip(Buffer.from(await zipRes.arrayBuffer()));
    const names = zip.getEntries().map((e) => e.entryName);
    assert.equal(names.length, 2 + 2 * 4);
    assert.ok(names.includes('index.html') && names.includes('album.json'));
    assert.equal(zip.readAsText(`images/${keysOf(sweepId)[1]}.png`), `png images/${keysOf(sweepId)[1]}.png`);
    assert.equal((await call('/api/albums/zip', { method: 'POST', body: { sweep: sweepId }, auth: null })).status, 401);
  });
  test('one album is packed at a time: a second download meanwhile is a clear 503', async () => {
    let release!: () => void;
    let reading!: () => void;
    const firstRead = new Promise<void>((resolve) => (reading = resolve));
    hold = { until: new Promise<void>((resolve) => (release = resolve)), reading };
    const first = call('/api/albums/zip', { method: 'POST', body: { sweep: sweepId } });
    await firstRead; // the first download is reading the bucket now
    const second = await call('/api/albums/zip', { method: 'POST', body: { sweep: otherSweep } });
    assert.equal(second.status, 503);
    assert.equal(second.headers.get('retry-after'), '5');
    assert.match(await second.text(), /another album is being packed/);
    release();
    assert.equal((await first).status, 200);
    assert.equal((await call('/api/albums/zip', { method: 'POST', body: { sweep: otherSweep } })).status, 200, 'free again once the first is sent');
    // A failed one frees it too.
    assert.equal((await call('/api/albums/zip', { method: 'POST', body: { sweep: 'sw_nope' } })).status, 404);
    assert.equal((await call('/api/albums/zip', { method: 'POST', body: { sweep: sweepId } })).status, 200);
  });

  test("users: bob can neither share, list nor revoke alice's images and links; an admin can revoke", async () => {
    for (const name of ['alice', 'bob']) assert.ok(seeded.store.addKey({ name, admin: false, weight: 1, quotaImages: null }, keyHash(`k-${name}`)));
    const own = (id: string, owner: string) => seeded.db.prepare('UPDATE sweeps SET owner = ? WHERE id = ?').run(owner, id);
    const aliceSweep = await seeded.addRenderedSweep({ ...SPEC, name: 'alice night', prompts: ['alice only'] });
    own(aliceSweep, 'alice');
    // bob rendered one of alice's images too (same prompt, seed and settings: the same render key).
    const bobSweep = await seeded.addRenderedSweep({ ...SPEC, name: 'bob night', prompts: ['alice only'], seeds: [1] });
    own(bobSweep, 'bob');
    const [shared, aliceOnly] = keysOf(aliceSweep) as [string, string];
    assert.deepEqual(keysOf(bobSweep), [shared]);
    const as = (who: string, path: string, method = 'GET', body?: unknown) => call(path, { method, body, auth: `k-${who}` });

    assert.equal((await as('bob', '/api/shares', 'POST', { keys: [`images/${aliceOnly}.png`] })).status, 400, "alice's image is unknown to bob");
    assert.equal((await as('bob', '/api/shares', 'POST', { sweep: aliceSweep })).status, 404);
    assert.equal((await as('bob', '/api/albums/zip', 'POST', { keys: [aliceOnly] })).status, 400);
    // Each user's link takes their own stars, and of those only images of their own sweeps.
    favorites = { local: [keysOf(sweepId)[0]!, aliceOnly], alice: [aliceOnly, shared], bob: [shared, aliceOnly] };
    const bobs = await as('bob', '/api/shares', 'POST', { favorites: true });
    assert.equal(bobs.status, 201, await bobs.clone().text());
    const bobShare = (await bobs.json()) as { id: string; url: string; images: number };
    assert.equal(bobShare.images, 1, 'only the image a sweep of bob rendered');
    const bobPage = await (await call(bobShare.url, { auth: null })).text();
    assert.ok(bobPage.includes(bobSweep) && !bobPage.includes(aliceSweep), "bob's link names his own sweep, never alice's");
    assert.equal((await call(`${bobShare.url}images/${aliceOnly}.png`, { auth: null })).status, 404);

    const made = await as('alice', '/api/shares', 'POST', { favorites: true, expiresIn: '1h' });
    assert.equal(made.status, 201);
    const aliceShare = (await made.json()) as { id: string; url: string; images: number };
    assert.equal(aliceShare.images, 2, "alice's own two stars, not the local user's");
    const listed = async (who: string) => ((await (await as(who, '/api/shares')).json()) as { shares: { id: string }[] }).shares.map((x) => x.id);
    assert.deepEqual(await listed('alice'), [aliceShare.id]);
    assert.deepEqual(await listed('bob'), [bobShare.id]);
    assert.equal((await as('bob', `/api/shares/${aliceShare.id}`, 'DELETE')).status, 404);
    assert.equal((await call(aliceShare.url, { auth: null })).status, 200, "bob's DELETE revoked nothing");
    assert.equal((await call(`/api/shares/${aliceShare.id}`, { method: 'DELETE' })).status, 204, 'an admin may revoke any link');
    assert.equal((await call(aliceShare.url, { auth: null })).status, 404);

    // A link lives as long as its owner may: bob's last key revoked, his link is 404; a new key, and it works again.
    assert.equal((await call(bobShare.url, { auth: null })).status, 200);
    assert.equal(seeded.store.revokeKeys('bob'), 1);
    assert.equal((await call(bobShare.url, { auth: null })).status, 404);
    assert.equal((await call(`${bobShare.url}images/${shared}.png`, { auth: null })).status, 404);
    assert.ok(seeded.store.addKey({ name: 'bob', admin: false, weight: 1, quotaImages: null }, keyHash('k-bob-2')));
    assert.equal((await call(bobShare.url, { auth: null })).status, 200);

    // A link that fails (here the database, asked whether bob may still share) is a 500 whose log line keeps the link's secret out.
    const lines: string[] = [];
    const failing = Object.assign(Object.create(seeded.engine) as typeof seeded.engine, {
      people: {
        ...seeded.engine.people,
        activeUser: () => Promise.reject(new Error('disk I/O error')),
      },
    });
    const logged = createHttpApp({ ...seeded.deps, engine: failing, log: createLogger('test', 'info', { write: (line: string) => void lines.push(line) }), hub: { dispatch: async () => {}, cancelJobs() {}, connectedNodeIds: () => [] }, placement: { explain: () => [] }, live: new Live() });
    const linkToken = /\/s\/([^/]+)\//.exec(bobShare.url)![1]!;
    assert.equal((await logged.request(bobShare.url, { headers: { host: '127.0.0.1:8080' } })).status, 500);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /request failed/);
    assert.match(lines[0]!, /"path":"\/s\/…\/"/);
    assert.ok(!lines[0]!.includes(linkToken), 'the token is not in the log');
    favorites = {};
  });
});

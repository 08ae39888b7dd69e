/**
 * Favorites per user (issue 16): the catalog keeps a star per (user, image),
 * a version-2 catalog's stars (and its taste model) become the local
 * user's, the HTTP API believes X-Nightshift-User only from a caller holding
 * the coordinator's token, and each user's taste model learns from their own
 * stars only.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { createLogger } from '@nightshift/common';
import { normalise } from '@nightshift/models';
import { Catalog, type ImageMeta } from './catalog.js';
import { createIndexerApp } from './http.js';
import { IndexStore } from './store.js';
import { Taste, TooFewFavorites } from './taste.js';
import { tasteTrainingSet } from './taste-data.js';

const log = createLogger('test', 'silent');
const DIM = 8;
const MODEL = { id: 'model-a', dim: DIM };
const rk = (i: number) => i.toString(16).padStart(64, '0');

function meta(i: number, sweepId = 'night'): ImageMeta {
  const createdAt = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
  return { renderKey: rk(i), key: `images/${rk(i)}.png`, sweepId, jobId: `j${i}`, prompt: `p${i}`, seed: i, params: {}, backend: 'procedural', renderModel: 'procedural-v1', node: 'n0', createdAt, storedAt: createdAt, source: 'event' };
}

/**
 * 60 images of one sweep: 0–19 lean along axis 0 ("red"), 20–39 along axis 1
 * ("blue"), the rest along the others; a small per-image offset keeps every
 * vector distinct (and the near-duplicate check quiet).
 */
function vectorOf(i: number): Float32Array {
  const v = new Float32Array(DIM);
  v[i < 20 ? 0 : i < 40 ? 1 : 2 + (i % 6)] = 1;
  v[(i * 3 + 1) % DIM]! += 0.05 + (i % 7) * 0.02;
  return normalise(v);
}

describe('favorites per user', () => {
  let dir: string;
  let store: IndexStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'favorites-'));
    store = IndexStore.open(dir, MODEL, { dupDistance: -1, exactBelow: 1000 }, log);
    store.store(Array.from({ length: 60 }, (_, i) => ({ meta: meta(i), vector: vectorOf(i) })));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the catalog keeps one star per (user, image): listing, marking, counting and filtering are per user', () => {
    const c = store.catalog;
    c.setFavorite('alice', rk(1), true);
    c.setFavorite('alice', rk(1), true); // twice: still one
    c.setFavorite('alice', rk(2), true);
    c.setFavorite('bob', rk(2), true);
    c.setFavorite('bob', rk(3), true);
    assert.deepEqual(c.allFavorites('alice').map((f) => f.render_key), [rk(1), rk(2)]);
    assert.deepEqual(c.allFavorites('bob').map((f) => f.render_key), [rk(2), rk(3)]);
    assert.deepEqual(c.allFavorites('carol'), []);
    assert.deepEqual([...c.favorites('bob', [rk(1), rk(2), rk(3)])].sort(), [rk(2), rk(3)]);
    assert.equal(c.favoriteCount('alice'), 2);
    assert.equal(c.favoriteCount('alice', 'night'), 2);
    assert.equal(c.favoriteCount('alice', 'other'), 0);
    assert.deepEqual(c.favoriteUsers(), ['alice', 'bob']);
    assert.equal(c.countWhere({ model: MODEL.id, favorites: true, user: 'alice' }), 2);
    assert.equal(c.countWhere({ model: MODEL.id, favorites: true, user: 'carol' }), 0);
    // Unstarring the shared image is bob's alone.
    c.setFavorite('bob', rk(2), false);
    assert.deepEqual([...c.favorites('alice', [rk(2)])], [rk(2)]);
    assert.deepEqual([...c.favorites('bob', [rk(2)])], []);
  });

  test("a version-2 catalog's stars and taste model become the local user's", () => {
    store.catalog.setMeta('taste.model', '{"format":1}');
    store.close();
    // Version 2 is version 3 with one star per image: rebuild that table and go back to version 2.
    const file = join(dir, 'indexer.sqlite');
    const db = new Database(file);
    db.exec(`DROP TABLE favorites; CREATE TABLE favorites (render_key TEXT PRIMARY KEY, created_at TEXT NOT NULL);
      INSERT INTO favorites VALUES ('${rk(5)}', '2026-01-02T00:00:00.000Z'), ('${rk(4)}', '2026-01-03T00:00:00.000Z');`);
    db.pragma('user_version = 2');
    db.close();
    const c = new Catalog(file);
    assert.equal(c.db.pragma('user_version', { simple: true }), 3);
    assert.deepEqual(c.allFavorites('local'), [
      { render_key: rk(5), key: `images/${rk(5)}.png`, sweep_id: 'night' },
      { render_key: rk(4), key: `images/${rk(4)}.png`, sweep_id: 'night' },
    ], 'kept, in the order they were starred');
    assert.equal(c.meta('taste.model'), undefined);
    assert.equal(c.meta('taste.model:local'), '{"format":1}', "the one model of before is the local user's");
    c.close();
    new Catalog(file).close(); // opening again is a no-op
    store = IndexStore.open(dir, MODEL, { dupDistance: -1, exactBelow: 1000 }, log);
  });

  test("each user's taste model learns from their own stars: alice's best is red, bob's blue, carol has none", async () => {
    for (let i = 0; i < 10; i++) store.catalog.setFavorite('alice', rk(i), true); // red
    for (let i = 20; i < 30; i++) store.catalog.setFavorite('bob', rk(i), true); // blue
    store.catalog.setFavorite('bob', rk(0), true); // one image both starred
    const set = tasteTrainingSet(store.catalog, MODEL.id, 'alice');
    assert.deepEqual([set.positives, set.negatives], [10, 50], "bob's stars are not alice's positives");
    const taste = new Taste(store, log, { debounceMs: 3_600_000 });
    try {
      const alice = await taste.best('alice', 'night', 5, { starred: false });
      const bob = await taste.best('bob', 'night', 5, { starred: false });
      assert.ok(alice.results.every((r) => parseInt(r.renderKey, 16) >= 10 && parseInt(r.renderKey, 16) < 20), `alice: the unstarred red ones ${alice.results.map((r) => parseInt(r.renderKey, 16))}`);
      assert.ok(bob.results.every((r) => parseInt(r.renderKey, 16) >= 30 && parseInt(r.renderKey, 16) < 40), `bob: the unstarred blue ones ${bob.results.map((r) => parseInt(r.renderKey, 16))}`);
      assert.deepEqual([alice.model.positives, bob.model.positives], [10, 11]);
      // `favorite` is the asker's: image 0 is starred by both, image 1 by alice only.
      const all = (await taste.best('bob', 'night', 60)).results;
      assert.deepEqual(all.filter((r) => r.favorite).map((r) => parseInt(r.renderKey, 16)).sort((a, b) => a - b), [0, ...Array.from({ length: 10 }, (_, i) => 20 + i)]);
      await assert.rejects(taste.best('carol', 'night', 5), (e: unknown) => e instanceof TooFewFavorites && e.favorites === 0);
      // Bob unstarring drops only his model.
      for (let i = 20; i < 30; i++) store.catalog.setFavorite('bob', rk(i), false);
      taste.favoritesChanged('bob');
      await assert.rejects(taste.model('bob'), TooFewFavorites);
      assert.equal((await taste.model('alice')).positives, 10);
      // Each model is stored under its user: a restart has both.
      await taste.retrain('bob');
      const again = new Taste(store, log);
      assert.equal(again.info('alice')?.positives, 10);
      assert.equal(again.info('bob'), undefined);
      await again.stop();
    } finally {
      await taste.stop();
    }
  });

  describe('X-Nightshift-User over HTTP', () => {
    const embedder = { embedTexts: async () => [new Float32Array(DIM)] };
    const appWith = (apiToken: string | undefined) => createIndexerApp({ store, embedder, storage: { get: async () => Buffer.alloc(0) }, apiToken, stats: () => ({}) });
    const req = (app: ReturnType<typeof appWith>, path: string, headers: Record<string, string>, method = 'GET') => app.request(path, { method, headers });

    test("from the coordinator (its token): each user stars, lists, filters and sees their own", async () => {
      const app = appWith('coord-token');
      const as = (user: string) => ({ authorization: 'Bearer coord-token', 'x-nightshift-user': user });
      assert.equal((await req(app, `/api/favorites/images/${rk(7)}.png`, as('alice'), 'PUT')).status, 200);
      assert.equal((await req(app, `/api/favorites/${rk(8)}`, as('bob'), 'PUT')).status, 200);
      const listed = async (user: string) => ((await (await req(app, '/api/favorites', as(user))).json()) as { favorites: { renderKey: string }[] }).favorites.map((f) => f.renderKey);
      assert.deepEqual(await listed('alice'), [rk(7)]);
      assert.deepEqual(await listed('bob'), [rk(8)]);
      assert.deepEqual(await listed('local'), []);
      const image = async (user: string, i: number) => ((await (await req(app, `/api/images/${rk(i)}`, as(user))).json()) as { favorite: boolean }).favorite;
      assert.deepEqual([await image('alice', 7), await image('bob', 7), await image('bob', 8)], [true, false, true]);
      const searched = async (user: string) =>
        ((await (await req(app, `/api/search?image=${rk(7)}&favorites=true&k=10`, as(user))).json()) as { results: { renderKey: string; favorite: boolean }[] }).results;
      assert.deepEqual((await searched('alice')).map((r) => [r.renderKey, r.favorite]), [[rk(7), true]]);
      assert.deepEqual((await searched('bob')).map((r) => [r.renderKey, r.favorite]), [[rk(8), true]]);
      // Unstarring is one's own: bob's DELETE of alice's star leaves it.
      assert.equal((await req(app, `/api/favorites/${rk(7)}`, as('bob'), 'DELETE')).status, 200);
      assert.deepEqual(await listed('alice'), [rk(7)]);
      // No header: the local user.
      assert.equal((await req(app, `/api/favorites/${rk(9)}`, { authorization: 'Bearer coord-token' }, 'PUT')).status, 200);
      assert.deepEqual(await listed('local'), [rk(9)]);
    });

    test("refused without the coordinator's credential: no token here, or a wrong one; a malformed name is a 400", async () => {
      const open = appWith(undefined);
      const claim = await req(open, '/api/favorites', { 'x-nightshift-user': 'alice' });
      assert.equal(claim.status, 403);
      assert.match(((await claim.json()) as { error: string }).error, /only from the coordinator.*NIGHTSHIFT_API_TOKEN/);
      assert.equal((await req(open, `/api/favorites/${rk(1)}`, { 'x-nightshift-user': 'alice', authorization: 'Bearer guess' }, 'PUT')).status, 403);
      assert.deepEqual(store.catalog.allFavorites('alice'), [], 'nothing starred in her name');
      assert.equal((await req(open, '/api/favorites', { 'x-nightshift-user': 'local' })).status, 200, 'naming the local user claims nothing');
      assert.equal((await req(open, '/api/favorites', { 'x-nightshift-user': '../Alice' })).status, 400);
      const guarded = appWith('coord-token');
      assert.equal((await req(guarded, '/api/favorites', { 'x-nightshift-user': 'alice', authorization: 'Bearer wrong' })).status, 401);
      assert.equal((await req(guarded, '/api/favorites', { 'x-nightshift-user': 'alice' })).status, 401);
    });
  });
});

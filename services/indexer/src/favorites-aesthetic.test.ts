/**
 * The aesthetic fallback of /best with favorites per user: the head's
 * ranking is everyone's (it judges images), but `favorite` marks and
 * `starred=false` leave out the caller's own stars only, never another
 * user's.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger } from '@nightshift/common';
import { ClipEmbedder, ensureTinyAesthetic, ensureTinyClip } from '@nightshift/models';
import { fixtureImage, type FixtureImage } from '@nightshift/devfarm';
import { Aesthetic } from './aesthetic.js';
import { loadAestheticHead, type AestheticHead } from './aesthetic-head.js';
import { metaFromEvent } from './consumer.js';
import { createIndexerApp } from './http.js';
import { IndexStore } from './store.js';
import { Taste } from './taste.js';

const TOKEN = 'coordinator-token';
const log = createLogger('test', 'silent');
let dir: string;
let embedder: ClipEmbedder;
let head: AestheticHead;
let store: IndexStore;
let taste: Taste;
let aesthetic: Aesthetic;
let app: ReturnType<typeof createIndexerApp>;
const images: FixtureImage[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'favorites-aesthetic-'));
  embedder = await ClipEmbedder.load(await ensureTinyClip(join(dir, 'models')));
  head = await loadAestheticHead(await ensureTinyAesthetic(join(dir, 'models')), embedder.dim);
  store = IndexStore.open(dir, { id: 'tiny', dim: embedder.dim }, { dupDistance: -1, exactBelow: 1000 }, log);
  for (let i = 0; i < 16; i++) images.push(await fixtureImage({ prompt: i % 2 ? `a yellow circle ${i}` : `a blue square ${i}`, seed: i, size: 64, sweepId: 'night' }));
  const vectors = await embedder.embedImages(images.map((f) => f.png));
  store.store(images.map((f, i) => ({ meta: { ...metaFromEvent(f.event), storedAt: f.event.createdAt }, vector: vectors[i]! })));
  taste = new Taste(store, log, { debounceMs: 3_600_000 });
  aesthetic = new Aesthetic(store, head, log, { page: 16 });
  app = createIndexerApp({ store, embedder, taste, aesthetic, apiToken: TOKEN, storage: { get: async () => Buffer.alloc(0) }, stats: () => ({}) });
});

after(async () => {
  await taste.stop();
  await aesthetic.stop();
  store.close();
  await head.dispose();
  await embedder.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const as = (user: string) => ({ authorization: `Bearer ${TOKEN}`, 'x-nightshift-user': user });

test("aesthetic fallback: bob's starred=false leaves out his stars only; favorite marks are his", async () => {
  const alice = images.slice(0, 3).map((f) => f.event.renderKey);
  const bob = images.slice(3, 5).map((f) => f.event.renderKey);
  for (const [user, keys] of [['alice', alice], ['bob', bob]] as const) {
    for (const rk of keys) assert.equal((await app.request(`/api/favorites/${rk}`, { method: 'PUT', headers: as(user) })).status, 200);
  }
  for (const path of ['/api/sweeps/night/best?k=16&starred=false', '/api/best?k=16&starred=false']) {
    const res = await app.request(path, { headers: as('bob') });
    const body = (await res.json()) as { scoredBy: string; results: { renderKey: string; favorite: boolean }[] };
    assert.equal(res.status, 200, path);
    assert.equal(body.scoredBy, 'aesthetic');
    const got = body.results.map((r) => r.renderKey);
    assert.equal(got.length, 14, `${path}: every image but bob's two`);
    assert.ok(bob.every((rk) => !got.includes(rk)), "bob's stars left out");
    assert.ok(alice.every((rk) => got.includes(rk)), "alice's stars are not bob's: kept");
    assert.ok(body.results.every((r) => !r.favorite), 'nothing shown is starred by bob');
  }
  const all = (await (await app.request('/api/sweeps/night/best?k=16', { headers: as('alice') })).json()) as { results: { renderKey: string; favorite: boolean }[] };
  assert.deepEqual(all.results.filter((r) => r.favorite).map((r) => r.renderKey).sort(), [...alice].sort(), "alice's marks are hers");
});

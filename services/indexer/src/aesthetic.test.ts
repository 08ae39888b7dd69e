/**
 * The aesthetic head in the indexer, through the HTTP app, on procedural
 * renders embedded by the built-in tiny CLIP model and scored by the built-in
 * tiny head ("likes yellow"): /best falls back to it with too few favorites
 * (scoredBy "aesthetic", the scores those of the head on the stored vectors),
 * images stored before the head existed are scored before a ranking needs
 * them, and a score never outlives the vector it was computed from.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '@nightshift/common';
import { ClipEmbedder, ensureTinyAesthetic, ensureTinyClip } from '@nightshift/models';
import { fixtureImage, type FixtureImage } from '@nightshift/devfarm';
import { Aesthetic } from './aesthetic.js';
import { loadAestheticHead, type AestheticHead } from './aesthetic-head.js';
import { scoreCounts, setScores, unscoredRows } from './aesthetic-store.js';
import { metaFromEvent } from './consumer.js';
import { createIndexerApp } from './http.js';
import { IndexStore } from './store.js';
import { Taste } from './taste.js';

interface BestBody {
  results: { key: string; renderKey: string; score: number; favorite: boolean; aesthetic?: number }[];
  scoredBy: string;
  aesthetic?: { head: string; scored: number; unscored: number };
  taste?: { error: string; favorites: number; needed: number };
  error?: string;
}

const COLOURS = ['red', 'blue', 'green', 'purple', 'cyan', 'pink'];
const SHAPES = ['circle', 'square', 'triangle', 'stripes'];

describe('aesthetic head in the indexer', () => {
  let dir: string;
  let embedder: ClipEmbedder;
  let head: AestheticHead;
  let store: IndexStore;
  let taste: Taste;
  let aesthetic: Aesthetic;
  let app: ReturnType<typeof createIndexerApp>;
  const images: FixtureImage[] = [];
  const log = createLogger('test', 'silent');
  const isYellow = (key: string) => images.find((f) => f.event.key === key)!.event.prompt.includes('yellow');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aesthetic-test-'));
    embedder = await ClipEmbedder.load(await ensureTinyClip(join(dir, 'models')));
    head = await loadAestheticHead(await ensureTinyAesthetic(join(dir, 'models')), embedder.dim);
    store = IndexStore.open(dir, { id: 'tiny', dim: embedder.dim }, { dupDistance: -1, exactBelow: 1000 }, log);
    // 40 images in one sweep, every fourth with a yellow object; 8 in another.
    const t0 = Date.parse('2026-03-01T22:00:00.000Z');
    for (let i = 0; i < 48; i++) {
      const c = COLOURS[i % COLOURS.length]!;
      const s = SHAPES[i % SHAPES.length]!;
      const prompt = i % 4 === 0 ? `a ${c} ${s} and a yellow circle` : `a ${c} ${s}`;
      images.push(await fixtureImage({ prompt, seed: i, size: 64, sweepId: i < 40 ? 'night' : 'other', createdAt: new Date(t0 + i * 1000).toISOString() }));
    }
    const vectors = await embedder.embedImages(images.map((f) => f.png));
    // Stored before the head is at work: nothing scored them.
    store.store(images.map((f, i) => ({ meta: { ...metaFromEvent(f.event), storedAt: f.event.createdAt }, vector: vectors[i]! })));
    taste = new Taste(store, log, { debounceMs: 3_600_000 });
    aesthetic = new Aesthetic(store, head, log, { page: 16 });
    app = createIndexerApp({ store, embedder, taste, aesthetic, storage: { get: async () => Buffer.alloc(0) }, stats: () => ({}) });
  });

  after(async () => {
    await taste.stop();
    await aesthetic.stop();
    store.close();
    await head.dispose();
    await embedder.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const best = async (path: string) => {
    const res = await app.request(path);
    return { status: res.status, body: (await res.json()) as BestBody };
  };

  test('too few favorites: /best ranks by the head (scoredBy "aesthetic"), the yellow images first, with the head\'s own scores', async () => {
    assert.deepEqual(scoreCounts(store.catalog, 'tiny', head.id), { scored: 0, unscored: 48 });
    const { status, body } = await best('/api/sweeps/night/best?k=40');
    assert.equal(status, 200);
    assert.equal(body.scoredBy, 'aesthetic');
    assert.deepEqual(body.taste, { error: 'too few favorites to learn from: 0 of the 10 needed (star more images)', favorites: 0, needed: 10 });
    assert.equal(body.aesthetic!.head, head.id);
    assert.equal(body.results.length, 40, 'every image of the sweep, scored before the ranking');
    assert.deepEqual(body.results.slice(0, 10).map((r) => isYellow(r.key)), Array(10).fill(true), 'the ten yellow images first');
    for (let i = 1; i < body.results.length; i++) assert.ok(body.results[i - 1]!.score >= body.results[i]!.score, 'best first');
    // The scores are the head's on the stored vectors, not anything made up.
    const ids = body.results.map((r) => store.catalog.get(r.renderKey)!.id);
    const want = await head.score(ids.map((id) => store.catalog.vector(id)!));
    body.results.forEach((r, i) => assert.equal(r.score, want[i]));
    // Only the sweep asked about was scored on demand.
    assert.deepEqual(scoreCounts(store.catalog, 'tiny', head.id), { scored: 40, unscored: 8 });
  });

  test('GET /api/best scores the rest first; starred=false leaves out favorites', async () => {
    const yellowKey = images.find((f) => f.event.prompt.includes('yellow'))!.event.key;
    assert.equal((await app.request(`/api/favorites/${encodeURIComponent(yellowKey)}`, { method: 'PUT' })).status, 200);
    const { status, body } = await best('/api/best?k=48&starred=false');
    assert.equal(status, 200);
    assert.equal(body.scoredBy, 'aesthetic');
    assert.equal(body.results.length, 47);
    assert.ok(body.results.every((r) => r.key !== yellowKey && !r.favorite));
    assert.deepEqual(body.aesthetic, { head: head.id, scored: 48, unscored: 0 });
    assert.equal((await app.request(`/api/favorites/${encodeURIComponent(yellowKey)}`, { method: 'DELETE' })).status, 200);
  });

  test('with 10 favorites the taste model ranks, and its results carry the head\'s score, even for rows not scored yet', async () => {
    const keys = images.filter((f) => f.event.prompt.includes('yellow')).map((f) => f.event.key);
    assert.equal(keys.length, 12);
    for (const key of keys.slice(0, 10)) assert.equal((await app.request(`/api/favorites/${encodeURIComponent(key)}`, { method: 'PUT' })).status, 200);
    // As just after a re-embedding: no row has this head's score (the taste ranking does not backfill).
    store.catalog.db.exec('UPDATE images SET aesthetic = NULL, aesthetic_head = NULL');
    const { status, body } = await best('/api/sweeps/night/best?k=5');
    assert.equal(status, 200);
    assert.equal(body.scoredBy, 'taste');
    assert.equal(body.results.length, 5);
    for (const r of body.results) assert.equal(r.aesthetic, (await head.score([store.catalog.vector(store.catalog.get(r.renderKey)!.id)!]))[0]);
    assert.deepEqual(scoreCounts(store.catalog, 'tiny', head.id), { scored: 5, unscored: 43 }, 'only the rows shown were scored');
    for (const key of keys.slice(0, 10)) await app.request(`/api/favorites/${encodeURIComponent(key)}`, { method: 'DELETE' });
  });

  test('a score belongs to its vector: kept when an image is stored again unchanged, cleared when its vector changes, and never written over a newer vector', async () => {
    await aesthetic.backfill(); // every row scored, whatever the tests before left
    const f = images[1]!;
    const meta = { ...metaFromEvent(f.event), storedAt: f.event.createdAt };
    const id = store.catalog.get(f.event.renderKey)!.id;
    const vector = store.catalog.vector(id)!;
    store.store([{ meta, vector }]);
    assert.deepEqual(unscoredRows(store.catalog, 'tiny', head.id, 10), [], 'same vector: score kept');
    const other = store.catalog.vector(store.catalog.get(images[2]!.event.renderKey)!.id)!;
    store.store([{ meta, vector: other }]);
    const [row] = unscoredRows(store.catalog, 'tiny', head.id, 10);
    assert.equal(row?.id, id, 'new vector: score cleared');
    // A score computed for the row as read, then the row changes again before it is written: not written.
    store.store([{ meta, vector }]);
    assert.equal(setScores(store.catalog, head.id, [{ id, seq: row!.seq, score: 9 }]), 0);
    assert.equal(await aesthetic.scoreIds([id]), 1);
    assert.deepEqual(unscoredRows(store.catalog, 'tiny', head.id, 10), []);
  });

  test('without a head, too few favorites stays a 409', async () => {
    const plain = createIndexerApp({ store, embedder, taste, storage: { get: async () => Buffer.alloc(0) }, stats: () => ({}) });
    const res = await plain.request('/api/sweeps/night/best?k=5');
    assert.equal(res.status, 409);
    assert.match(((await res.json()) as BestBody).error!, /too few favorites/);
  });
});

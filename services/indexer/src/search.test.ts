/**
 * Search over real embeddings from the built-in test model (procedural
 * renders of colours and shapes), through the HTTP app: semantic ranking,
 * image-to-image, combined queries, filters, pagination, favorites,
 * near-duplicates and the 400s. No NATS or S3 here (see test/e2e).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '@nightshift/common';
import { ClipEmbedder, cosine, ensureTinyClip } from '@nightshift/models';
import { metaFromEvent } from './consumer.js';
import { createIndexerApp } from './http.js';
import { rankedHits, type SearchResult } from './search.js';
import { IndexStore } from './store.js';
import { fixtureImage, type FixtureImage } from '@nightshift/devfarm';

const PROMPTS = ['a red circle', 'a blue square', 'green stripes', 'a yellow triangle', 'purple circles', 'an orange square'];
const DUP_DISTANCE = 1e-4;

describe('search', () => {
  let dir: string;
  let embedder: ClipEmbedder;
  let store: IndexStore;
  let app: ReturnType<typeof createIndexerApp>;
  const fixtures: FixtureImage[] = [];
  const t0 = Date.parse('2026-03-01T22:00:00.000Z');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'search-test-'));
    embedder = await ClipEmbedder.load(await ensureTinyClip(join(dir, 'models')));
    store = IndexStore.open(dir, { id: 'tiny', dim: embedder.dim }, { dupDistance: DUP_DISTANCE, exactBelow: 1000 }, createLogger('test', 'silent'));
    // 6 prompts × 3 seeds (2 in sweep A, 1 in sweep B), one minute apart. The test model
    // reads diagonal stripes as curves (its edge statistics), so seeds 2–4 are ones that
    // paint axis-aligned bands (seeds 1 and 5 do not).
    let n = 0;
    for (const sweep of ['sweep-a', 'sweep-b']) {
      for (const prompt of PROMPTS) {
        for (const seed of sweep === 'sweep-a' ? [2, 3] : [4]) {
          fixtures.push(await fixtureImage({ prompt, seed, sweepId: sweep, createdAt: new Date(t0 + n++ * 60_000).toISOString() }));
        }
      }
    }
    // A re-upload of the first image under another renderKey, later: an exact near-duplicate.
    const first = fixtures[0]!;
    fixtures.push({ png: first.png, event: { ...first.event, renderKey: 'copy-of-first', key: 'images/copy-of-first.png', createdAt: new Date(t0 + n++ * 60_000).toISOString() } });
    const vectors = await embedder.embedImages(fixtures.map((f) => f.png));
    // As if each had been stored in S3 at its render time.
    store.store(fixtures.map((f, i) => ({ meta: { ...metaFromEvent(f.event), storedAt: f.event.createdAt }, vector: vectors[i]! })));
    app = createIndexerApp({ store, embedder, storage: { get: async () => Buffer.alloc(0) }, stats: () => ({ indexed: store.index.size }) });
  });

  after(async () => {
    store.close();
    await embedder.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  async function get(query: string): Promise<{ status: number; body: { results: SearchResult[]; nextOffset: number | null; error?: string } }> {
    const res = await app.request(`/api/search?${query}`);
    return { status: res.status, body: (await res.json()) as never };
  }

  test('colour queries rank the images of that colour first', async () => {
    for (const [word, prompt] of [['red', 'a red circle'], ['blue', 'a blue square'], ['green', 'green stripes'], ['yellow', 'a yellow triangle'], ['purple', 'purple circles']]) {
      const n = fixtures.filter((f) => f.event.prompt === prompt).length;
      const { body } = await get(`q=${word}&k=${n}`);
      assert.equal(body.results.length, n);
      for (const r of body.results) assert.equal(r.prompt, prompt, `"${word}" ranked "${r.prompt}" among its top ${n}`);
    }
  });

  test('shape queries rank that shape first, whatever its colour', async () => {
    for (const [word, prompts] of [['circle', ['a red circle', 'purple circles']], ['square', ['a blue square', 'an orange square']], ['stripes', ['green stripes']], ['triangle', ['a yellow triangle']]] as const) {
      const n = fixtures.filter((f) => (prompts as readonly string[]).includes(f.event.prompt)).length;
      const { body } = await get(`q=${word}&k=${n}`);
      for (const r of body.results) assert.ok((prompts as readonly string[]).includes(r.prompt), `"${word}" ranked "${r.prompt}" among its top ${n}`);
    }
    // Colour and shape together: the blue square beats red squares and blue anything else.
    assert.equal((await get('q=a blue square&k=1')).body.results[0]!.prompt, 'a blue square');
  });

  test('image-to-image: the image itself first (score 1), then its nearest', async () => {
    const target = fixtures.find((f) => f.event.prompt === 'a yellow triangle')!;
    const { body } = await get(`image=${target.event.key}&k=5`);
    assert.equal(body.results[0]!.key, target.event.key);
    assert.ok(body.results[0]!.score > 0.9999);
    // The rest in descending similarity, the same prompt's other seeds first.
    const scores = body.results.map((r) => r.score);
    assert.deepEqual([...scores].sort((a, b) => b - a), scores);
    assert.deepEqual(body.results.slice(1, 3).map((r) => r.prompt), ['a yellow triangle', 'a yellow triangle']);
    // Also by renderKey, and by thumbnail key.
    assert.equal((await get(`image=${target.event.renderKey}&k=1`)).body.results[0]!.key, target.event.key);
    assert.equal((await get(`image=thumbs/${target.event.renderKey}.webp&k=1`)).body.results[0]!.key, target.event.key);
  });

  test('text + image with weights: the heavier side wins', async () => {
    const red = fixtures.find((f) => f.event.prompt === 'a red circle')!.event.key;
    assert.equal((await get(`q=blue&image=${red}&textWeight=4&imageWeight=1&k=1`)).body.results[0]!.prompt, 'a blue square');
    assert.equal((await get(`q=blue&image=${red}&textWeight=1&imageWeight=4&k=1`)).body.results[0]!.prompt, 'a red circle');
    // Balanced: red circles and blue squares share the top (something of both).
    const both = (await get(`q=blue&image=${red}&k=6`)).body.results.map((r) => r.prompt);
    assert.ok(both.includes('a red circle') && both.includes('a blue square'), both.join(', '));
  });

  test('filters: sweep, prompt substring, date range, minimum score', async () => {
    let r = (await get('q=circle&k=50&sweep=sweep-b')).body.results;
    assert.equal(r.length, PROMPTS.length);
    assert.ok(r.every((x) => x.sweepId === 'sweep-b'));
    r = (await get('q=circle&k=50&prompt=SQUARE')).body.results;
    assert.deepEqual(new Set(r.map((x) => x.prompt)), new Set(['a blue square', 'an orange square']));
    const from = new Date(t0 + 5 * 60_000).toISOString();
    const to = new Date(t0 + 9 * 60_000).toISOString();
    r = (await get(`q=red&k=50&from=${from}&to=${to}`)).body.results;
    assert.equal(r.length, 4, 'minutes 5, 6, 7 and 8');
    assert.ok(r.every((x) => x.createdAt >= from && x.createdAt < to));
    r = (await get('q=red&k=50&minScore=0.5')).body.results;
    assert.ok(r.length > 0 && r.every((x) => x.score >= 0.5 && x.prompt === 'a red circle'));
    // Filters combine.
    r = (await get('q=red&k=50&sweep=sweep-a&prompt=circle&minScore=0.5')).body.results;
    assert.equal(r.length, 3, 'two seeds of the red circle in sweep A, and the copy of the first');
  });

  test('pagination: pages are consecutive slices of one ranking', async () => {
    const all = (await get('q=circle&k=12')).body.results.map((r) => r.key);
    const pages: string[] = [];
    let offset: number | null = 0;
    while (offset !== null && offset < 12) {
      const { body } = await get(`q=circle&k=4&offset=${offset}`);
      pages.push(...body.results.map((r) => r.key));
      offset = body.nextOffset;
    }
    assert.deepEqual(pages, all);
    const last = await get(`q=circle&k=10&offset=${fixtures.length - 5}`);
    assert.equal(last.body.results.length, 5);
    assert.equal(last.body.nextOffset, null);
  });

  test('favorites: PUT and DELETE, visible in results, filterable; unknown keys are 404', async () => {
    const key = fixtures.find((f) => f.event.prompt === 'a blue square')!.event.key;
    assert.equal((await app.request(`/api/favorites/${key}`, { method: 'PUT' })).status, 200);
    let r = (await get('q=blue&k=50&favorites=true')).body.results;
    assert.deepEqual(r.map((x) => [x.key, x.favorite]), [[key, true]]);
    assert.equal((await get('q=blue&k=5')).body.results.find((x) => x.key === key)?.favorite, true);
    // The list the coordinator asks for when upscaling a sweep's favorites.
    const list = async (q: string) => ((await (await app.request(`/api/favorites${q}`)).json()) as { favorites: { key: string }[] }).favorites.map((f) => f.key);
    assert.deepEqual(await list(''), [key]);
    assert.deepEqual(await list(`?sweep=${fixtures.find((f) => f.event.key === key)!.event.sweepId}`), [key]);
    assert.deepEqual(await list('?sweep=another'), []);
    assert.equal((await app.request(`/api/favorites/${key}`, { method: 'DELETE' })).status, 200);
    r = (await get('q=blue&k=50&favorites=true')).body.results;
    assert.equal(r.length, 0);
    assert.equal((await app.request('/api/favorites/images/nope.png', { method: 'PUT' })).status, 404);
  });

  test('near-duplicates: marked against the nearest earlier image, hideable', async () => {
    const first = fixtures[0]!.event;
    const { body } = await get(`image=${first.key}&k=30`);
    const copy = body.results.find((r) => r.renderKey === 'copy-of-first')!;
    assert.equal(copy.duplicateOf, first.key);
    assert.equal(body.results.find((r) => r.key === first.key)!.duplicateOf, null);
    // Every mark agrees with a brute-force check over all stored vectors.
    const vecs = new Map(fixtures.map((f) => [f.event.renderKey, store.catalog.vector(store.catalog.get(f.event.renderKey)!.id)!]));
    for (const f of fixtures) {
      const me = store.catalog.get(f.event.renderKey)!;
      let best: { key: string; d: number } | undefined;
      for (const g of fixtures) {
        const other = store.catalog.get(g.event.renderKey)!;
        const d = 1 - cosine(vecs.get(f.event.renderKey)!, vecs.get(g.event.renderKey)!);
        const isEarlier = other.stored_at < me.stored_at || (other.stored_at === me.stored_at && other.render_key < me.render_key);
        if (isEarlier && d <= DUP_DISTANCE && (!best || d < best.d)) best = { key: other.key, d };
      }
      const detail = (await (await app.request(`/api/images/${f.event.key}`)).json()) as { duplicateOf: { key: string } | null };
      assert.equal(detail.duplicateOf?.key ?? null, best?.key ?? null, `mark of ${f.event.renderKey} (${f.event.prompt} seed ${f.event.seed})`);
    }
    const hidden = (await get(`image=${first.key}&k=30&duplicates=hide`)).body.results;
    assert.ok(hidden.every((r) => r.duplicateOf === null));
    assert.ok(!hidden.some((r) => r.renderKey === 'copy-of-first'));
  });

  test('filtered search over the ANN index (broad filter) matches the exact scan', async () => {
    const qv = (await embedder.embedTexts(['circle']))[0]!;
    const query = { k: 5, sweep: 'sweep-a' };
    const exact = rankedHits(qv, query, { catalog: store.catalog, index: store.index, model: 'tiny' });
    const viaAnn = rankedHits(qv, query, { catalog: store.catalog, index: store.index, model: 'tiny', exactSubset: 0 });
    assert.deepEqual(viaAnn.map((h) => h.id), exact.map((h) => h.id));
  });

  test('bad queries get a clear 400', async () => {
    const key = fixtures[0]!.event.key;
    const cases: [string, RegExp][] = [
      ['q=', /q must not be empty/],
      ['q=%20%20', /q must not be empty/],
      ['', /give q=TEXT, image=IMAGE_KEY, or both/],
      ['q=red&k=0', /k must be an integer from 1 to 500/],
      ['q=red&k=-3', /k must be an integer from 1 to 500/],
      ['q=red&k=501', /k must be an integer from 1 to 500/],
      ['q=red&k=ten', /k must be an integer/],
      ['q=red&offset=-1', /offset must be an integer/],
      ['image=images/unknown.png', /unknown image key: images\/unknown.png/],
      ['q=red&from=yesterday', /from must be a date/],
      ['q=red&from=2026-03-02&to=2026-03-01', /from must be before to/],
      ['q=red&minScore=2', /minScore must be a number from -1 to 1/],
      ['q=red&favorites=maybe', /favorites must be true or false/],
      ['q=red&duplicates=maybe', /duplicates must be show or hide/],
      [`q=red&image=${key}&textWeight=0&imageWeight=0`, /cannot both be 0/],
    ];
    for (const [query, re] of cases) {
      const { status, body } = await get(query);
      assert.equal(status, 400, query);
      assert.match(body.error ?? '', re, query);
    }
  });

  test('GET /api/images/:key describes one image; /healthz keeps its contract', async () => {
    const f = fixtures[1]!.event;
    const res = await app.request(`/api/images/${f.key}`);
    const body = (await res.json()) as { key: string; prompt: string; seed: number; params: unknown; searchable: boolean };
    assert.equal(body.key, f.key);
    assert.equal(body.prompt, f.prompt);
    assert.deepEqual(body.params, f.params);
    assert.equal(body.searchable, true);
    assert.equal((await app.request('/api/images/images/none.png')).status, 404);
    assert.deepEqual(await (await app.request('/healthz')).json(), { ok: true, indexed: fixtures.length });
  });
});

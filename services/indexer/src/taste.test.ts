/**
 * The taste model on a synthetic night, through the HTTP app: procedural
 * renders embedded by the built-in tiny CLIP model, "favorites" defined by a
 * hidden rule ("yellow" in the prompt: colour is what the tiny model encodes;
 * a shape-and-colour conjunction like "yellow circle" is not linear in its
 * concept space when a scene holds two objects). The person looked through
 * an evening sweep and starred every matching image; the model must then pick
 * the night sweep's matches. Seeded throughout: the same images, folds and
 * model on every run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { COLOR_NAMES, createLogger, SHAPES } from '@nightshift/common';
import { ClipEmbedder, ensureTinyClip } from '@nightshift/models';
import { fixtureImage, type FixtureImage } from '@nightshift/devfarm';
import { metaFromEvent } from './consumer.js';
import { createIndexerApp } from './http.js';
import { IndexStore } from './store.js';
import { Taste, type TasteModelInfo } from './taste.js';
import { tasteTrainingSet } from './taste-data.js';
import { auc, seededRandom } from './taste-metrics.js';

const matches = (prompt: string) => prompt.includes('yellow');

/** Prompts of one or two coloured objects; `yellow` forces (true) or forbids (false) the rule. */
function prompter(seed: number) {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const object = (colors: readonly string[]) => `a ${pick(colors)} ${pick(SHAPES)}`;
  const others = COLOR_NAMES.filter((c) => c !== 'yellow');
  return (yellow: boolean): string => {
    const two = rnd() < 0.5;
    if (!yellow) return two ? `${object(others)} and ${object(others)}` : object(others);
    if (!two) return object(['yellow']);
    return rnd() < 0.5 ? `${object(['yellow'])} and ${object(others)}` : `${object(others)} and ${object(['yellow'])}`;
  };
}

interface BestBody {
  results: { key: string; renderKey: string; score: number; favorite: boolean }[];
  scoredBy: string;
  model: TasteModelInfo;
  error?: string;
}

describe('taste model on a synthetic night', () => {
  let dir: string;
  let embedder: ClipEmbedder;
  let store: IndexStore;
  let taste: Taste;
  let app: ReturnType<typeof createIndexerApp>;
  const evening: FixtureImage[] = [];
  const night: FixtureImage[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'taste-test-'));
    embedder = await ClipEmbedder.load(await ensureTinyClip(join(dir, 'models')));
    store = IndexStore.open(dir, { id: 'tiny', dim: embedder.dim }, { dupDistance: -1, exactBelow: 1000 }, createLogger('test', 'silent'));
    const prompt = prompter(7);
    const t0 = Date.parse('2026-03-01T22:00:00.000Z');
    let n = 0;
    // Evening: 60 images, 10 matching. Night: 200 images, a quarter matching.
    for (let i = 0; i < 60; i++) evening.push(await fixtureImage({ prompt: prompt(i < 10), seed: 100 + i, size: 64, sweepId: 'evening', createdAt: new Date(t0 + n++ * 1000).toISOString() }));
    for (let i = 0; i < 200; i++) night.push(await fixtureImage({ prompt: prompt(i % 4 === 0), seed: 1000 + i, size: 64, sweepId: 'night', createdAt: new Date(t0 + n++ * 1000).toISOString() }));
    const all = [...evening, ...night];
    const vectors = await embedder.embedImages(all.map((f) => f.png));
    store.store(all.map((f, i) => ({ meta: { ...metaFromEvent(f.event), storedAt: f.event.createdAt }, vector: vectors[i]! })));
    // A debounce far beyond the test: training happens on demand, so nothing depends on timing.
    taste = new Taste(store, createLogger('test', 'silent'), { debounceMs: 3_600_000 });
    app = createIndexerApp({ store, embedder, taste, storage: { get: async () => Buffer.alloc(0) }, stats: () => ({}) });
  });

  after(async () => {
    await taste.stop();
    store.close();
    await embedder.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const star = async (f: FixtureImage, on = true) => {
    const res = await app.request(`/api/favorites/${encodeURIComponent(f.event.key)}`, { method: on ? 'PUT' : 'DELETE' });
    assert.equal(res.status, 200);
  };
  const best = async (query: string) => {
    const res = await app.request(`/api/sweeps/night/best?${query}`);
    return { status: res.status, body: (await res.json()) as BestBody };
  };

  test('fewer than 10 favorites: 409, no scores', async () => {
    for (const f of evening.slice(0, 9)) await star(f);
    const { status, body } = await best('k=20');
    assert.equal(status, 409);
    assert.match(body.error!, /too few favorites to learn from: 9 of the 10/);
    assert.equal(body.results, undefined);
  });

  test('after 10 stars: ≥ 80 % of the top 20 match, and the CV AUC is within 0.05 of the held-out AUC', async (t) => {
    await star(evening[9]!);
    const { status, body } = await best('k=20');
    assert.equal(status, 200);
    assert.equal(body.scoredBy, 'taste');
    assert.equal(body.results.length, 20);
    assert.equal(body.model.positives, 10);
    assert.equal(body.model.negatives, 50);
    const byKey = new Map(night.map((f) => [f.event.key, f.event.prompt]));
    const hits = body.results.filter((r) => matches(byKey.get(r.key)!)).length;
    assert.ok(hits >= 16, `precision@20 = ${hits}/20`);
    for (let i = 1; i < body.results.length; i++) assert.ok(body.results[i - 1]!.score >= body.results[i]!.score, 'best first');

    // Held out: the night sweep, never labelled, judged by the hidden rule.
    const all = await best('k=1000');
    assert.equal(all.body.results.length, night.length);
    const heldOut = auc(all.body.results.map((r) => r.score), all.body.results.map((r) => matches(byKey.get(r.key)!)));
    const cv = body.model.cvAuc!;
    t.diagnostic(`precision@20 ${hits}/20, CV AUC ${cv.toFixed(4)}, held-out AUC ${heldOut.toFixed(4)}`);
    assert.equal(body.model.folds, 5);
    assert.ok(Math.abs(cv - heldOut) <= 0.05, `CV AUC ${cv} vs held-out ${heldOut}`);
  });

  test('the stored model comes back after a restart; unstarring below 10 drops it (409 again)', async () => {
    const again = new Taste(store, createLogger('test', 'silent'));
    const before = (await best('k=5')).body.model;
    assert.deepEqual(again.info(), before);
    await again.stop();
    await star(evening[0]!, false);
    const { status } = await best('k=5');
    assert.equal(status, 409);
    await star(evening[0]!);
  });

  test('starred=false leaves out starred images; bad k is a 400', async () => {
    const res = await app.request('/api/sweeps/evening/best?k=60&starred=false');
    const body = (await res.json()) as BestBody;
    assert.equal(res.status, 200);
    assert.equal(body.results.length, 50);
    assert.ok(body.results.every((r) => !r.favorite));
    assert.equal((await best('k=0')).status, 400);
    assert.equal((await best('k=abc')).status, 400);
  });

  test('GET /api/best ranks every image through the vector index, with the same scores as the exact sweep ranking', async () => {
    const res = await app.request('/api/best?k=20&starred=false');
    assert.equal(res.status, 200);
    const body = (await res.json()) as BestBody;
    assert.equal(body.results.length, 20);
    assert.ok(body.results.every((r) => !r.favorite));
    const prompts = new Map([...evening, ...night].map((f) => [f.event.key, f.event.prompt]));
    assert.ok(body.results.filter((r) => matches(prompts.get(r.key)!)).length >= 16);
    const exact = new Map((await best('k=1000')).body.results.map((r) => [r.key, r.score]));
    for (const r of body.results.filter((x) => x.key.startsWith('images/') && exact.has(x.key))) assert.equal(r.score, exact.get(r.key));
    for (let i = 1; i < body.results.length; i++) assert.ok(body.results[i - 1]!.score >= body.results[i]!.score);
  });

  test('labels: favorites, and the unstarred images of sweeps with a favorite; negatives thinned evenly past the cap', () => {
    const full = tasteTrainingSet(store.catalog, 'tiny', 'local');
    assert.deepEqual([full.positives, full.negatives], [10, 50], 'the night sweep has no favorite: not a label');
    const thin = tasteTrainingSet(store.catalog, 'tiny', 'local', 20);
    assert.deepEqual([thin.positives, thin.negatives], [10, 20]);
    assert.deepEqual(tasteTrainingSet(store.catalog, 'tiny', 'local', 20).vectors, thin.vectors, 'the same set every time');
    assert.deepEqual(tasteTrainingSet(store.catalog, 'tiny', 'someone-else').vectors, [], "another user's stars label nothing for them");
  });
});

/** Rule 4 with registry models: loaded, then held, then fetched; a fetch others would outrun is not started. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { ModelCacheStateSchema } from '@nightshift/proto';
import { openDb } from './db.js';
import { Store, type NewJob } from './store.js';
import { Scheduler, type NodeCaps } from './scheduler.js';
import { NodeModels } from './node-models.js';
import { DEFAULT_FETCH_BYTES_PER_S, DEFAULT_JOB_MS, fetchMs, worthFetching } from './model-placement.js';

const H = (c: string) => c.repeat(64);
const CAPS: NodeCaps = { backends: ['onnx'], models: [], vramMb: 24_000 };
const GB = 1024 ** 3;

function setup() {
  const now = { t: 1_000_000 };
  const store = new Store(openDb(':memory:'), { now: () => now.t, maxAttempts: 3, blocklistAfter: 2 });
  const online = new Set<string>();
  const models = new NodeModels(() => online);
  return { store, now, online, models, scheduler: new Scheduler(store.db, models) };
}

function report(models: NodeModels, online: Set<string>, node: string, s: { cached?: string[]; loaded?: string; rate?: number; downloading?: string }) {
  online.add(node);
  models.update(node, create(ModelCacheStateSchema, {
    cachedHashes: s.cached ?? [],
    loadedHash: s.loaded ?? '',
    downloadBytesPerS: s.rate ?? 0,
    downloads: s.downloading ? [{ hash: s.downloading, name: 'x', bytesDone: 1n, bytesTotal: 10n }] : [],
  }));
}

function addSweep(store: Store, id: string, hash: string, bytes: number, jobs: number) {
  const rows: NewJob[] = Array.from({ length: jobs }, (_, i) => ({ index: i, renderKey: `${id}-${i}`, prompt: 'p', seed: i, params: {}, axes: {}, backend: 'onnx', model: `m-${hash.slice(0, 4)}`, minVramMb: 0 }));
  return store.createSweep({ name: id, spec: {}, priority: 0, backend: 'onnx', model: `m-${hash.slice(0, 4)}`, modelHash: hash, modelBytes: bytes }, rows, id);
}

const sweepOf = (store: Store, jobId: string | undefined) => (jobId ? store.getJob(jobId)!.sweep_id : undefined);

test('worthFetching: no holders ⇒ fetch; holders outrun a big download of a short queue', () => {
  assert.equal(worthFetching({ bytes: 4 * GB, bytesPerS: 0, queued: 1, jobMs: 1_000, holders: 0 }), true);
  // 4 GB at the default 50 MiB/s ≈ 82 s; 3 jobs × 1 s on one holder = 3 s.
  assert.equal(worthFetching({ bytes: 4 * GB, bytesPerS: 0, queued: 3, jobMs: 1_000, holders: 1 }), false);
  // 1,000 jobs × 1 s / 2 holders = 500 s > 82 s.
  assert.equal(worthFetching({ bytes: 4 * GB, bytesPerS: 0, queued: 1_000, jobMs: 1_000, holders: 2 }), true);
  // A measured fast link makes the same download worth it.
  assert.equal(worthFetching({ bytes: 4 * GB, bytesPerS: 4 * GB, queued: 3, jobMs: 1_000, holders: 1 }), true);
  assert.equal(fetchMs(DEFAULT_FETCH_BYTES_PER_S, 0), 1_000);
  assert.equal(worthFetching({ bytes: DEFAULT_FETCH_BYTES_PER_S, bytesPerS: 0, queued: 1_000 / DEFAULT_JOB_MS, jobMs: undefined, holders: 1 }), true, 'equal times: fetch');
});

test('a node prefers the sweep whose model it has loaded, then one it has cached, then one it must fetch', () => {
  const { store, now, online, models, scheduler } = setup();
  addSweep(store, 'sw-fetch', H('a'), 1_000, 4);
  now.t++;
  addSweep(store, 'sw-cached', H('b'), 1_000, 4);
  now.t++;
  addSweep(store, 'sw-loaded', H('c'), 1_000, 4);
  report(models, online, 'n1', { cached: [H('b'), H('c')], loaded: H('c') });
  assert.equal(sweepOf(store, scheduler.pick('n1', CAPS, now.t)), 'sw-loaded');
  report(models, online, 'n1', { cached: [H('b'), H('c')] });
  assert.equal(sweepOf(store, scheduler.pick('n1', CAPS, now.t)), 'sw-cached');
  report(models, online, 'n1', { downloading: H('c') });
  assert.equal(sweepOf(store, scheduler.pick('n1', CAPS, now.t)), 'sw-loaded', 'a download under way counts as held');
  report(models, online, 'n1', {});
  assert.equal(sweepOf(store, scheduler.pick('n1', CAPS, now.t)), 'sw-fetch', 'nothing held: the oldest, fetched');
});

test('a big download is not started for a short queue that nodes holding the model finish sooner; the SQL matches worthFetching', () => {
  for (const c of [
    { bytes: 4 * GB, rate: 0, queued: 3, holders: 1 },
    { bytes: 4 * GB, rate: 0, queued: 3, holders: 0 },
    { bytes: 4 * GB, rate: 0, queued: 200, holders: 2 },
    { bytes: 4 * GB, rate: 400 * 1024 ** 2, queued: 3, holders: 1 },
    { bytes: 4 * GB, rate: 400 * 1024 ** 2, queued: 10, holders: 3 },
    { bytes: 50 * 1024 ** 2, rate: 0, queued: 1, holders: 1 },
  ]) {
    const { store, now, online, models, scheduler } = setup();
    addSweep(store, 'sw', H('d'), c.bytes, c.queued);
    for (let i = 0; i < c.holders; i++) report(models, online, `holder-${i}`, { cached: [H('d')] });
    report(models, online, 'cold', { rate: c.rate });
    const want = worthFetching({ bytes: c.bytes, bytesPerS: c.rate, queued: c.queued, jobMs: undefined, holders: c.holders });
    assert.equal(sweepOf(store, scheduler.pick('cold', CAPS, now.t)) === 'sw', want, JSON.stringify(c));
    // A holder always takes it.
    if (c.holders) assert.equal(sweepOf(store, scheduler.pick('holder-0', CAPS, now.t)), 'sw');
  }
});

test('the recent mean render time counts: slow jobs make the download worth it', () => {
  const { store, now, online, models, scheduler } = setup();
  addSweep(store, 'sw', H('e'), 4 * GB, 40);
  report(models, online, 'holder', { cached: [H('e')] });
  report(models, online, 'cold', {});
  // 40 × 5 s default on one holder = 200 s > 82 s at the default rate: fetched.
  assert.equal(sweepOf(store, scheduler.pick('cold', CAPS, now.t)), 'sw');
  // The holder renders 10 jobs at 1 s each: 30 left × 1 s = 30 s < 82 s: not fetched any more.
  for (let i = 0; i < 10; i++) {
    const id = scheduler.pick('holder', CAPS, now.t)!;
    const job = store.lease([id], 'holder', 30_000)[0]!;
    store.db.prepare(`UPDATE jobs SET state = 'done', render_ms = 1000, finished_at = ? WHERE id = ?`).run(now.t + i, job.id);
  }
  assert.equal(scheduler.pick('cold', CAPS, now.t), undefined);
  // The holder leaves: the cold node fetches after all.
  online.delete('holder');
  models.connectedChanged(); // as the hub does when a session ends
  assert.equal(sweepOf(store, scheduler.pick('cold', CAPS, now.t)), 'sw');
});

test('node reports are checked: bad hashes dropped, lists capped, undefined forgets', () => {
  const models = new NodeModels(() => ['n']);
  models.update('n', create(ModelCacheStateSchema, { cachedHashes: [H('a'), 'not-a-hash', H('a'), '../x'], loadedHash: 'zz', downloadBytesPerS: Number.NaN }));
  assert.deepEqual(models.of('n'), { cached: [H('a')], loaded: '', downloads: [], bytesPerS: 0 });
  assert.deepEqual(models.holders(H('a')), ['n']);
  models.update('n', create(ModelCacheStateSchema, { cachedHashes: Array.from({ length: 5_000 }, (_, i) => i.toString(16).padStart(64, '0')) }));
  assert.equal(models.of('n')!.cached.length, 1_000);
  models.update('n', undefined);
  assert.equal(models.of('n'), undefined);
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { createLogger } from '@nightshift/common';
import { normalise } from '@nightshift/models';
import { Catalog, type ImageMeta } from './catalog.js';
import { earlier, IndexStore, type StoreOptions } from './store.js';

const log = createLogger('test', 'silent');
const DIM = 8;
const MODEL = { id: 'model-a', dim: DIM };
const OPTS: StoreOptions = { dupDistance: 0.01, exactBelow: 1000 };

function unit(...xs: number[]): Float32Array {
  const v = new Float32Array(DIM);
  xs.forEach((x, i) => (v[i] = x));
  return normalise(v);
}

function meta(renderKey: string, createdAt: string, extra: Partial<ImageMeta> = {}): ImageMeta {
  return {
    renderKey,
    key: `images/${renderKey}.png`,
    sweepId: 's1',
    jobId: `j-${renderKey}`,
    prompt: `prompt ${renderKey}`,
    seed: 1,
    params: { width: 64 },
    backend: 'procedural',
    renderModel: 'procedural-v1',
    node: 'n0',
    createdAt,
    storedAt: createdAt,
    source: 'event',
    ...extra,
  };
}

describe('IndexStore', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'index-store-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('one entry per renderKey: across batches, within a batch, and on redelivery', () => {
    const s = IndexStore.open(dir, MODEL, OPTS, log);
    const m = meta('a', '2026-01-01T00:00:00.000Z');
    s.store([{ meta: m, vector: unit(1) }]);
    s.store([{ meta: m, vector: unit(1) }, { meta: m, vector: unit(0, 1) }]);
    assert.equal(s.catalog.count(), 1);
    assert.equal(s.index.size, 1);
    assert.equal(s.index.search(unit(0, 1), 1)[0]!.score > 0.99, true, 'the last write wins');
    assert.ok(s.isCurrent('a', m.key, '2026-01-01T00:00:00Z'), 'a redelivery of the same event is recognised');
    assert.ok(!s.isCurrent('a', m.key, '2026-01-02T00:00:00Z'), 'a re-render (new time) is not');
    s.close();
  });

  test('restart: snapshot + catch-up from rows written after it (a crash before the next snapshot)', () => {
    let s = IndexStore.open(dir, MODEL, OPTS, log);
    s.store([0, 1, 2].map((i) => ({ meta: meta(`k${i}`, `2026-01-01T00:00:0${i}.000Z`), vector: unit(1, i) })));
    s.saveSnapshot();
    s.store([3, 4].map((i) => ({ meta: meta(`k${i}`, `2026-01-01T00:00:0${i}.000Z`), vector: unit(1, i) })));
    s.catalog.close(); // "crash": rows committed, snapshot not updated

    s = IndexStore.open(dir, MODEL, OPTS, log);
    assert.equal(s.openedBy, 'snapshot');
    assert.equal(s.caughtUp, 2);
    assert.equal(s.index.size, 5);
    assert.equal(s.index.search(unit(1, 4), 1)[0]!.id, s.catalog.get('k4')!.id);
    s.close();

    // A clean stop saves the snapshot: nothing to catch up.
    s = IndexStore.open(dir, MODEL, OPTS, log);
    assert.equal(s.openedBy, 'snapshot');
    assert.equal(s.caughtUp, 0);
    s.close();
  });

  test('a snapshot for another model or epoch, or a broken one, is rebuilt from the catalog', () => {
    let s = IndexStore.open(dir, MODEL, OPTS, log);
    s.store([{ meta: meta('a', '2026-01-01T00:00:00.000Z'), vector: unit(1) }]);
    s.close();
    s = IndexStore.open(dir, { id: 'model-b', dim: 4 }, OPTS, log);
    assert.equal(s.openedBy, 'empty', "model-a's snapshot is not used for model-b");
    assert.equal(s.index.size, 0, 'vectors of another model are not searchable');
    assert.equal(s.catalog.countStale('model-b'), 1);
    s.store([{ meta: meta('b', '2026-01-01T00:00:00.000Z'), vector: new Float32Array([1, 0, 0, 0]) }]);
    s.close();
    s = IndexStore.open(dir, MODEL, OPTS, log);
    assert.equal(s.openedBy, 'rebuild', 'the snapshot is now model-b’s');
    assert.equal(s.index.size, 1);
    s.catalog.setMeta('epoch', '9');
    s.catalog.close();
    s = IndexStore.open(dir, MODEL, OPTS, log);
    assert.equal(s.openedBy, 'rebuild');
    s.close();
  });

  test('near-duplicate marks do not depend on arrival order', () => {
    // A (earliest), B ≈ A, C ≈ A (closer to B), D far from all, E ≈ D but later.
    const items = [
      { meta: meta('A', '2026-01-01T00:00:01.000Z'), vector: unit(1, 0.05) },
      { meta: meta('B', '2026-01-01T00:00:02.000Z'), vector: unit(1, 0.1) },
      { meta: meta('C', '2026-01-01T00:00:03.000Z'), vector: unit(1, 0.12) },
      { meta: meta('D', '2026-01-01T00:00:04.000Z'), vector: unit(0, 0, 1) },
      { meta: meta('E', '2026-01-01T00:00:05.000Z'), vector: unit(0, 0.05, 1) },
    ];
    const marks = (order: number[], batch: number) => {
      const d = mkdtempSync(join(tmpdir(), 'dups-'));
      try {
        const s = IndexStore.open(d, MODEL, OPTS, log);
        const list = order.map((i) => items[i]!);
        for (let i = 0; i < list.length; i += batch) s.store(list.slice(i, i + batch));
        const out = Object.fromEntries(items.map((it) => {
          const info = s.catalog.get(it.meta.renderKey)!;
          return [it.meta.renderKey, info.dup_of === null ? null : s.catalog.byId(info.dup_of)!.render_key];
        }));
        s.close();
        return out;
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    };
    const want = { A: null, B: 'A', C: 'B', D: null, E: 'D' };
    assert.deepEqual(marks([0, 1, 2, 3, 4], 1), want);
    assert.deepEqual(marks([4, 3, 2, 1, 0], 1), want);
    assert.deepEqual(marks([2, 4, 0, 3, 1], 2), want);
    assert.deepEqual(marks([2, 4, 0, 3, 1], 5), want);
    assert.ok(earlier({ stored_at: 'a', render_key: 'z' }, { stored_at: 'b', render_key: 'a' }));
    assert.ok(earlier({ stored_at: 'a', render_key: 'a' }, { stored_at: 'a', render_key: 'b' }));
  });

  test('migrates the walking skeleton catalog, keeping rows, vectors and favorites', () => {
    const file = join(dir, 'indexer.sqlite');
    const db = new Database(file);
    db.exec(`CREATE TABLE images (render_key TEXT PRIMARY KEY, key TEXT NOT NULL, sweep_id TEXT NOT NULL, job_id TEXT NOT NULL, prompt TEXT NOT NULL,
      seed INTEGER NOT NULL, params_json TEXT NOT NULL, node TEXT NOT NULL, model TEXT NOT NULL, created_at TEXT NOT NULL,
      favorite INTEGER NOT NULL DEFAULT 0, vector BLOB NOT NULL); CREATE INDEX images_sweep ON images (sweep_id);`);
    const ins = db.prepare('INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    ins.run('r1', 'images/r1.png', 's', 'j', 'a red circle', 3, '{}', 'n', 'old-model', '2026-01-01T00:00:00.000Z', 1, Buffer.from(unit(1).buffer));
    ins.run('r2', 'images/r2.png', 's', 'j', 'a blue square', 4, '{}', 'n', 'old-model', '2026-01-01T00:00:01.000Z', 0, Buffer.from(unit(0, 1).buffer));
    db.close();
    const c = new Catalog(file);
    assert.equal(c.count(), 2);
    assert.deepEqual(c.allFavorites('local'), [{ render_key: 'r1', key: 'images/r1.png', sweep_id: 's' }], "the skeleton's stars are the local user's");
    assert.equal(c.get('r2')!.prompt, 'a blue square');
    assert.deepEqual([...c.vector(c.get('r2')!.id)!], [...unit(0, 1)]);
    assert.equal(c.countStale('new-model'), 2, 'a new model id re-embeds them');
    c.close();
    new Catalog(file).close(); // and opening again is a no-op
  });
});

/** The catalog's aesthetic columns: a version-1 catalog gains them on open, its rows intact and unscored. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { scoreCounts, setScores, topScored, unscoredRows } from './aesthetic-store.js';
import { Catalog } from './catalog.js';
import { SCHEMA_VERSION } from './catalog-schema.js';

const meta = (rk: string) => ({
  renderKey: rk,
  key: `images/${rk}.png`,
  sweepId: 's',
  jobId: 'j',
  prompt: 'a red circle',
  seed: 1,
  params: {},
  backend: 'procedural',
  renderModel: 'procedural',
  node: 'n',
  createdAt: '2026-01-01T00:00:00.000Z',
  storedAt: '2026-01-01T00:00:00.000Z',
  source: 'event' as const,
});

test('a version-1 catalog is migrated: the aesthetic columns are added, rows kept, none scored', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aesthetic-store-'));
  try {
    const file = join(dir, 'indexer.sqlite');
    const c = new Catalog(file);
    c.upsert([{ meta: meta('r1'), model: 'm', vector: Float32Array.from([1, 0]) }, { meta: meta('r2'), model: 'm', vector: Float32Array.from([0, 1]) }]);
    c.close();
    // Back to what version 1 wrote.
    const db = new Database(file);
    db.exec('DROP INDEX images_aesthetic; ALTER TABLE images DROP COLUMN aesthetic; ALTER TABLE images DROP COLUMN aesthetic_head;');
    db.pragma('user_version = 1');
    db.close();

    const v2 = new Catalog(file);
    assert.equal(v2.db.pragma('user_version', { simple: true }), SCHEMA_VERSION, 'migrated to the current schema');
    assert.equal(v2.count(), 2);
    assert.deepEqual(scoreCounts(v2, 'm', 'h'), { scored: 0, unscored: 2 });
    const rows = unscoredRows(v2, 'm', 'h', 10);
    assert.deepEqual(rows.map((r) => [...r.vector]), [[1, 0], [0, 1]]);
    assert.equal(setScores(v2, 'h', rows.map((r, i) => ({ id: r.id, seq: r.seq, score: i + 1 }))), 2);
    assert.deepEqual([...topScored(v2, 'm', 'h', 5).values()], [2, 1]);
    assert.deepEqual(unscoredRows(v2, 'm', 'another head', 10).length, 2, 'another head scores them again');
    v2.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

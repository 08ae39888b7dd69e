import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { normalise } from '@nightshift/models';
import { exactScan, FlatVectors, usearchUnavailable, VectorIndex } from './vector-index.js';

const DIM = 24;

/** Deterministic unit vectors around a few cluster centres (like embeddings, unlike uniform noise). */
function vectors(n: number, seed = 1): Float32Array[] {
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const centres = Array.from({ length: 8 }, () => Float32Array.from({ length: DIM }, rnd));
  return Array.from({ length: n }, (_, i) => {
    const c = centres[i % centres.length]!;
    return normalise(Float32Array.from({ length: DIM }, (_, j) => c[j]! + 0.6 * rnd()));
  });
}

const brute = (all: Float32Array[], q: Float32Array, k: number) => exactScan(q, k, all.length, DIM, (i) => all[i]!, (i) => i + 1);

describe('VectorIndex', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vector-index-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const data = vectors(3000);
  const ids = data.map((_, i) => i + 1);
  const queries = vectors(20, 99);

  test('usearch loads on this Node', () => {
    assert.equal(usearchUnavailable, undefined, `usearch failed to load: ${usearchUnavailable}`);
  });

  test('exact mode below the threshold returns exactly the brute-force top k', () => {
    const idx = new VectorIndex({ dim: DIM, exactBelow: 10_000 });
    idx.upsert(ids, data);
    assert.equal(idx.mode, 'exact');
    assert.equal(idx.size, 3000);
    for (const q of queries) {
      const got = idx.search(q, 10);
      const want = brute(data, q, 10);
      assert.deepEqual(got.map((h) => h.id), want.map((h) => h.id));
      got.forEach((h, i) => assert.ok(Math.abs(h.score - want[i]!.score) < 1e-5));
    }
  });

  test('HNSW above the threshold: recall@10 against exact search', () => {
    const idx = new VectorIndex({ dim: DIM, exactBelow: 1000 });
    for (let i = 0; i < data.length; i += 500) idx.upsert(ids.slice(i, i + 500), data.slice(i, i + 500));
    assert.equal(idx.mode, 'hnsw');
    let found = 0;
    for (const q of queries) {
      const want = new Set(brute(data, q, 10).map((h) => h.id));
      found += idx.search(q, 10).filter((h) => want.has(h.id)).length;
    }
    assert.ok(found / (queries.length * 10) >= 0.95, `recall@10 ${found / (queries.length * 10)}`);
  });

  test('upsert replaces by id, remove deletes, in both modes', () => {
    for (const exactBelow of [10_000, 0]) {
      const idx = new VectorIndex({ dim: DIM, exactBelow });
      idx.upsert(ids.slice(0, 100), data.slice(0, 100));
      idx.upsert([5, 5000], [data[200]!, data[201]!]);
      assert.equal(idx.size, 101);
      assert.equal(idx.search(data[200]!, 1)[0]!.id, 5);
      idx.remove([5, 7]);
      assert.equal(idx.size, 99);
      assert.ok(!idx.has(5) && !idx.has(7) && idx.has(8));
      assert.ok(!idx.search(data[200]!, 99).some((h) => h.id === 5));
    }
  });

  test('a snapshot saved and loaded answers the same', () => {
    const idx = new VectorIndex({ dim: DIM, exactBelow: 0 });
    idx.upsert(ids, data);
    const file = join(dir, 'snap.usearch');
    idx.save(file, { model: 'm', epoch: 3, seq: 7 });
    assert.deepEqual(VectorIndex.snapshotInfo(file), { model: 'm', epoch: 3, seq: 7, dim: DIM, size: 3000, quantization: 'f32', connectivity: 16 });
    const again = new VectorIndex({ dim: DIM, exactBelow: 0 });
    again.loadSnapshot(file);
    assert.equal(again.size, 3000);
    for (const q of queries) assert.deepEqual(again.search(q, 10), idx.search(q, 10));
  });

  test('FlatVectors swap-remove keeps every other vector findable', () => {
    const f = new FlatVectors(DIM, 2);
    data.slice(0, 50).forEach((v, i) => f.upsert(i + 1, v));
    for (const id of [1, 50, 25]) f.remove(id);
    assert.equal(f.size, 47);
    for (let i = 0; i < 50; i++) {
      const top = f.search(data[i]!, 1)[0]!;
      if ([1, 50, 25].includes(i + 1)) assert.notEqual(top.id, i + 1);
      else assert.equal(top.id, i + 1);
    }
  });
});

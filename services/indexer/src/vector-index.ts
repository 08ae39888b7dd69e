/**
 * The in-memory vector index: usearch HNSW (inner product over L2-normalised
 * vectors, so score = cosine similarity), plus an exact flat scan while the
 * collection is small (at a few thousand vectors exact search costs under a
 * millisecond and has perfect recall). Keys are catalog row ids.
 *
 * The HNSW graph is kept up to date at every size, so crossing the exact
 * threshold costs nothing, and it is what gets snapshotted to disk. The
 * snapshot is only a cache of the catalog (see catalog.ts): its sidecar says
 * which model, epoch and change counter it reflects, and a mismatch means
 * "rebuild from SQLite".
 *
 * usearch's engines field says Node >= 22, but its N-API prebuild loads and
 * passes our tests on Node 20. Should the native module ever fail to load,
 * everything falls back to the exact flat scan (in JS), with a log line.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Usearch from 'usearch';

type UsearchModule = typeof Usearch;

let usearchModule: UsearchModule | undefined;
let usearchError: string | undefined;
try {
  // require, not import: a failed native load must not fail this module.
  usearchModule = createRequire(import.meta.url)('usearch') as UsearchModule;
} catch (err) {
  usearchError = (err as Error).message;
}

/** Why usearch could not be loaded, or undefined when it loaded. */
export const usearchUnavailable = usearchError;

export interface Hit {
  id: number;
  score: number;
}

export interface VectorIndexOptions {
  dim: number;
  /** Exact (flat) search up to this many vectors; HNSW beyond. */
  exactBelow: number;
  connectivity?: number;
  expansionAdd?: number;
  expansionSearch?: number;
  quantization?: 'f32' | 'f16';
  /** Threads for bulk adds (0: usearch decides). */
  threads?: number;
}

export interface SnapshotInfo {
  model: string;
  dim: number;
  epoch: number;
  seq: number;
  size: number;
  quantization: string;
  connectivity: number;
}

/** Exact inner-product search over a contiguous matrix; native (usearch exactSearch) when available. */
export class FlatVectors {
  private data: Float32Array;
  private ids: number[] = [];
  private readonly slot = new Map<number, number>();

  constructor(readonly dim: number, capacity = 1024) {
    this.data = new Float32Array(dim * Math.max(1, capacity));
  }

  get size(): number {
    return this.ids.length;
  }

  has(id: number): boolean {
    return this.slot.has(id);
  }

  upsert(id: number, v: Float32Array): void {
    let i = this.slot.get(id);
    if (i === undefined) {
      i = this.ids.length;
      if ((i + 1) * this.dim > this.data.length) {
        const bigger = new Float32Array(this.data.length * 2);
        bigger.set(this.data);
        this.data = bigger;
      }
      this.ids.push(id);
      this.slot.set(id, i);
    }
    this.data.set(v, i * this.dim);
  }

  remove(id: number): void {
    const i = this.slot.get(id);
    if (i === undefined) return;
    const last = this.ids.length - 1;
    if (i !== last) {
      // Swap-remove keeps the matrix dense.
      const lastId = this.ids[last]!;
      this.data.copyWithin(i * this.dim, last * this.dim, (last + 1) * this.dim);
      this.ids[i] = lastId;
      this.slot.set(lastId, i);
    }
    this.ids.pop();
    this.slot.delete(id);
  }

  search(q: Float32Array, k: number): Hit[] {
    const n = this.ids.length;
    k = Math.min(k, n);
    if (k <= 0) return [];
    if (usearchModule) {
      const m = usearchModule.exactSearch(this.data.subarray(0, n * this.dim), q, this.dim, k, usearchModule.MetricKind.IP, 1) as Usearch.Matches;
      const out: Hit[] = [];
      for (let i = 0; i < m.keys.length; i++) out.push({ id: this.ids[Number(m.keys[i]!)]!, score: 1 - m.distances[i]! });
      return out;
    }
    return exactScan(q, k, n, this.dim, (i) => this.data.subarray(i * this.dim, (i + 1) * this.dim), (i) => this.ids[i]!);
  }
}

/** Top-k by inner product over `n` vectors given by accessor; plain JS (fallback and subsets). */
export function exactScan(q: Float32Array, k: number, n: number, dim: number, vec: (i: number) => Float32Array, id: (i: number) => number): Hit[] {
  const top: Hit[] = [];
  for (let i = 0; i < n; i++) {
    const v = vec(i);
    let s = 0;
    for (let j = 0; j < dim; j++) s += v[j]! * q[j]!;
    if (top.length === k && s <= top[top.length - 1]!.score) continue;
    let pos = top.length;
    while (pos > 0 && top[pos - 1]!.score < s) pos--;
    top.splice(pos, 0, { id: id(i), score: s });
    if (top.length > k) top.pop();
  }
  return top;
}

export class VectorIndex {
  private hnsw: Usearch.Index | undefined;
  /** Present while exact search is in use (or always, without usearch). */
  private flat: FlatVectors | undefined;
  readonly dim: number;

  constructor(readonly opts: VectorIndexOptions) {
    this.dim = opts.dim;
    this.hnsw = usearchModule ? this.newHnsw() : undefined;
    this.flat = new FlatVectors(opts.dim);
  }

  private newHnsw(): Usearch.Index {
    const u = usearchModule!;
    return new u.Index({
      dimensions: this.dim,
      metric: u.MetricKind.IP,
      quantization: this.opts.quantization === 'f16' ? u.ScalarKind.F16 : u.ScalarKind.F32,
      connectivity: this.opts.connectivity ?? 16,
      expansion_add: this.opts.expansionAdd ?? 128,
      expansion_search: this.opts.expansionSearch ?? 128,
      multi: false,
    });
  }

  /** 'exact' while the flat scan answers queries, else 'hnsw'. */
  get mode(): 'exact' | 'hnsw' {
    return this.flat ? 'exact' : 'hnsw';
  }

  get size(): number {
    return this.hnsw ? this.hnsw.size() : this.flat!.size;
  }

  /** Whether the flat scan is still wanted (and must be fed vectors). */
  get needsFlat(): boolean {
    return this.flat !== undefined;
  }

  /** Adds or replaces vectors by id. */
  upsert(ids: readonly number[], vectors: readonly Float32Array[]): void {
    if (!ids.length) return;
    if (this.hnsw) {
      const keys = BigUint64Array.from(ids, (i) => BigInt(i));
      const present = this.hnsw.contains(keys) as boolean | boolean[];
      const had = keys.filter((_, i) => (Array.isArray(present) ? present[i] : present));
      // usearch refuses duplicate keys: replace = remove + add.
      if (had.length) this.hnsw.remove(had);
      const matrix = new Float32Array(ids.length * this.dim);
      vectors.forEach((v, i) => {
        if (v.length !== this.dim) throw new Error(`vector has dimension ${v.length}, index has ${this.dim}`);
        matrix.set(v, i * this.dim);
      });
      // One thread for small batches: starting a thread pool costs more than the work.
      this.hnsw.add(keys, matrix, ids.length < 1024 ? 1 : (this.opts.threads ?? 0));
    }
    if (this.flat) {
      ids.forEach((id, i) => this.flat!.upsert(id, vectors[i]!));
      if (this.hnsw && this.flat.size > this.opts.exactBelow) this.flat = undefined; // from here on, HNSW
    }
  }

  remove(ids: readonly number[]): void {
    if (!ids.length) return;
    if (this.hnsw) this.hnsw.remove(BigUint64Array.from(ids, (i) => BigInt(i)));
    for (const id of ids) this.flat?.remove(id);
  }

  has(id: number): boolean {
    if (this.hnsw) return this.hnsw.contains(BigInt(id)) as boolean;
    return this.flat!.has(id);
  }

  /** Top-k ids by cosine similarity, best first. */
  search(q: Float32Array, k: number): Hit[] {
    k = Math.min(k, this.size);
    if (k <= 0) return [];
    if (this.flat) return this.flat.search(q, k);
    const m = this.hnsw!.search(q, k, 1) as Usearch.Matches;
    const out: Hit[] = [];
    for (let i = 0; i < m.keys.length; i++) out.push({ id: Number(m.keys[i]!), score: 1 - m.distances[i]! });
    return out;
  }

  /** Writes the HNSW graph (atomically: temp file, then rename) and its sidecar. */
  save(file: string, info: Omit<SnapshotInfo, 'size' | 'dim' | 'quantization' | 'connectivity'>): void {
    if (!this.hnsw) return;
    const tmp = `${file}.tmp-${process.pid}`;
    this.hnsw.save(tmp);
    // Sidecar first removed, then written after the rename: a crash in between leaves no valid pair, so a rebuild.
    rmSync(`${file}.json`, { force: true });
    renameSync(tmp, file);
    const full: SnapshotInfo = { ...info, dim: this.dim, size: this.hnsw.size(), quantization: this.opts.quantization ?? 'f32', connectivity: this.opts.connectivity ?? 16 };
    writeFileSync(`${file}.json`, JSON.stringify(full));
  }

  /** Reads a snapshot's sidecar, or undefined when there is none (or it is unreadable). */
  static snapshotInfo(file: string): SnapshotInfo | undefined {
    if (!existsSync(file) || !existsSync(`${file}.json`)) return undefined;
    try {
      return JSON.parse(readFileSync(`${file}.json`, 'utf8')) as SnapshotInfo;
    } catch {
      return undefined;
    }
  }

  /** Replaces the graph with a snapshot file's; the caller has checked its sidecar. */
  loadSnapshot(file: string): void {
    if (!usearchModule) throw new Error('usearch is not available');
    const h = this.newHnsw();
    h.load(file);
    if (h.dimensions() !== this.dim) throw new Error(`snapshot has dimension ${h.dimensions()}, expected ${this.dim}`);
    this.hnsw = h;
    this.flat = h.size() <= this.opts.exactBelow ? new FlatVectors(this.dim, h.size() + 16) : undefined;
  }

  /** Feeds the flat scan after a snapshot load (the graph holds the vectors, the scan needs its own copy). */
  fillFlat(ids: readonly number[], vectors: readonly Float32Array[]): void {
    if (!this.flat) return;
    ids.forEach((id, i) => this.flat!.upsert(id, vectors[i]!));
  }

  /** Drops everything (a rebuild follows). */
  clear(): void {
    this.hnsw = usearchModule ? this.newHnsw() : undefined;
    this.flat = new FlatVectors(this.dim);
  }
}

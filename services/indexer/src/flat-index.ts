/**
 * Exact (brute-force) inner-product search over normalised vectors held in one
 * contiguous Float32Array. Right for small collections; the HNSW index for
 * large ones comes later (issue 5). Upserting an existing id replaces it.
 */
export interface Hit {
  id: string;
  score: number;
}

export class FlatIndex {
  private data: Float32Array;
  private ids: string[] = [];
  private readonly slot = new Map<string, number>();

  constructor(readonly dim: number, capacity = 1024) {
    this.data = new Float32Array(dim * capacity);
  }

  get size(): number {
    return this.ids.length;
  }

  upsert(id: string, v: Float32Array): void {
    if (v.length !== this.dim) throw new Error(`vector has dimension ${v.length}, index has ${this.dim}`);
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

  /** Top-k ids by inner product, best first; `accept` filters candidates. */
  search(q: Float32Array, k: number, accept: (id: string) => boolean = () => true): Hit[] {
    const top: Hit[] = [];
    const d = this.dim;
    for (let i = 0; i < this.ids.length; i++) {
      let s = 0;
      const off = i * d;
      for (let j = 0; j < d; j++) s += this.data[off + j]! * q[j]!;
      if (top.length === k && s <= top[top.length - 1]!.score) continue;
      const id = this.ids[i]!;
      if (!accept(id)) continue;
      let pos = top.length;
      while (pos > 0 && top[pos - 1]!.score < s) pos--;
      top.splice(pos, 0, { id, score: s });
      if (top.length > k) top.pop();
    }
    return top;
  }
}

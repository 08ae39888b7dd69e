/**
 * Keyed resources opened on demand (the onnx backend's loaded models: their
 * InferenceSessions hold (V)RAM), with at most `max` kept open. Before a new
 * one opens, the least recently used ones nobody holds are closed to make
 * room; one in use is never closed, so while every open one is held the
 * count may briefly pass `max`, and it comes back down as they are released.
 * A failed open is forgotten, so the next acquire tries again.
 */
interface Entry<T> {
  value: Promise<T>;
  users: number;
}

export interface Lease<T> {
  value: T;
  /** Ends this use; idempotent. */
  release(): void;
}

export class LruResources<T> {
  /** Insertion order is recency: a use moves its entry to the end. */
  private readonly entries = new Map<string, Entry<T>>();
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private readonly max: number,
    private readonly open: (key: string) => Promise<T>,
    private readonly close: (value: T, key: string) => Promise<void>,
  ) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`at least one resource must stay open, got ${max}`);
  }

  async acquire(key: string): Promise<Lease<T>> {
    let e = this.entries.get(key);
    if (e) {
      this.entries.delete(key);
    } else {
      // Room first: a model's memory is freed before the next one is loaded.
      this.evict(this.max - 1);
      const freed = this.settled();
      const entry: Entry<T> = { value: freed.then(() => this.open(key)), users: 0 };
      entry.value.catch(() => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      });
      e = entry;
    }
    this.entries.set(key, e);
    e.users++;
    let value: T;
    try {
      value = await e.value;
    } catch (err) {
      e.users--;
      throw err;
    }
    const entry = e;
    let released = false;
    return {
      value,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        this.evict(this.max);
      },
    };
  }

  /** Resolves once every close begun so far has finished. */
  async settled(): Promise<void> {
    await Promise.all([...this.closing]);
  }

  /** Keys open or opening, least recently used first. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Closes unused entries, oldest first, until at most `keep` are open. */
  private evict(keep: number): void {
    for (const [key, e] of this.entries) {
      if (this.entries.size <= keep) return;
      if (e.users > 0) continue;
      this.entries.delete(key);
      // A failed open has nothing to close; a failed close leaves nothing to do.
      const done = e.value.then((v) => this.close(v, key)).catch(() => {});
      this.closing.add(done);
      void done.finally(() => this.closing.delete(done));
    }
  }

  /** Closes everything (the node stops; nothing may be in use). */
  async closeAll(): Promise<void> {
    const all = [...this.entries];
    this.entries.clear();
    await Promise.allSettled([...all.map(([key, e]) => e.value.then((v) => this.close(v, key))), ...this.closing]);
  }
}

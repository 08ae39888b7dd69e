/**
 * How many online nodes hold each registry model, farm-wide (the store's
 * ModelHolderEngine: on PostgreSQL every replica's nodes), for the pick's
 * rule 4. A fill of many nodes asks once per node; the answer is kept for a
 * short while and dropped at once when this replica's nodes report a change,
 * so what a node just said counts in its very next pick.
 */
import type { ModelHolderEngine } from './store-engine/engine.js';
import { KeptPromise } from './kept-promise.js';

/** How long another replica's nodes' holdings may be stale here. */
const KEEP_MS = 1_000;

export class HolderCounts {
  private readonly counts: KeptPromise<ReadonlyMap<string, number>>;
  /** Node → the hashes last written for it (written again only when they change: every heartbeat carries them). */
  private readonly written = new Map<string, string>();

  constructor(
    private readonly holders: ModelHolderEngine,
    now: () => number = Date.now,
  ) {
    this.counts = new KeptPromise(() => this.holders.holderCounts(), KEEP_MS, now);
  }

  get(): Promise<ReadonlyMap<string, number>> {
    return this.counts.get();
  }

  /** A node connected or left: counts are asked again. */
  invalidate(): void {
    this.counts.drop();
  }

  /** Forgets what was written for a node (it may have served another replica since, which wrote its own). */
  forget(nodeId: string): void {
    this.written.delete(nodeId);
  }

  /** What a node holds now (cached and loaded hashes); written when it changed. */
  async setHeld(nodeId: string, hashes: readonly string[]): Promise<void> {
    const key = [...new Set(hashes)].sort().join(',');
    if (this.written.get(nodeId) === key) return;
    await this.holders.setHeld(nodeId, hashes);
    this.written.set(nodeId, key);
    this.invalidate();
  }
}

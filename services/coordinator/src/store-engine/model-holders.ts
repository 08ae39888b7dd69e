/**
 * Model holders (engine.ts's ModelHolderEngine): the bound on what one node
 * may say it holds, and the SQLite engine's holdings, kept in the one
 * process's memory (as NodeModels keeps them) and counted against the nodes
 * the Store has online.
 */
import { MAX_REPORTED_HASHES } from '../node-models.js';
import type { Store } from '../store.js';
import type { ModelHolderEngine } from './engine.js';

/** A node's cache plus the model it has loaded. */
export const MAX_HELD_HASHES = MAX_REPORTED_HASHES + 1;

/** The distinct hashes, refused when more than a node can report. */
export function heldHashes(nodeId: string, hashes: readonly string[]): string[] {
  const distinct = [...new Set(hashes)];
  if (distinct.length > MAX_HELD_HASHES) throw new RangeError(`node ${nodeId} holds ${distinct.length} models, more than the ${MAX_HELD_HASHES} a node may report`);
  return distinct;
}

export class SqliteModelHolders implements ModelHolderEngine {
  constructor(
    private readonly store: Store,
    /** Node → hashes: shared by every engine over one Store. */
    private readonly held: Map<string, readonly string[]>,
  ) {}

  async setHeld(nodeId: string, hashes: readonly string[]): Promise<void> {
    const distinct = heldHashes(nodeId, hashes);
    if (distinct.length) this.held.set(nodeId, distinct);
    else this.held.delete(nodeId);
  }

  async holderCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    // Most farms hold no registry model: no reason to read the nodes (asked again at every reconnect).
    if (this.held.size === 0) return counts;
    for (const node of this.store.listNodes()) {
      if (node.status !== 'online') continue;
      for (const hash of this.held.get(node.id) ?? []) counts.set(hash, (counts.get(hash) ?? 0) + 1);
    }
    return counts;
  }
}

/**
 * What each connected node holds of the farm's registry models (issue 14):
 * the content hashes in its cache, the one loaded in (V)RAM, downloads in
 * progress and its measured download rate, as it last reported them
 * (ModelCacheState on Register and every Heartbeat). Kept in memory only: a
 * node re-sends it within one heartbeat of any coordinator restart. Nodes are
 * not trusted, so what they report is checked and capped here.
 */
import type { ModelCacheState } from '@nightshift/proto';

export interface ModelDownloadView {
  hash: string;
  name: string;
  bytesDone: number;
  bytesTotal: number;
}

export interface NodeModelState {
  /** Hashes fully downloaded and verified. */
  cached: string[];
  /** The hash loaded now; '' when none. */
  loaded: string;
  downloads: ModelDownloadView[];
  /** Measured download rate from the bucket; 0 = not measured yet. */
  bytesPerS: number;
}

/** A node's cache may hold more, but the scheduler needs no more than this many hashes of it. */
export const MAX_REPORTED_HASHES = 1_000;
export const MAX_REPORTED_DOWNLOADS = 32;

const HASH_RE = /^[0-9a-f]{64}$/;
const count = (n: bigint | number) => Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, Number(n)));

/** The checked, capped form of what a node reported (bad hashes are dropped, not trusted). */
export function nodeModelState(m: ModelCacheState): NodeModelState {
  const cached = [...new Set(m.cachedHashes.filter((h) => HASH_RE.test(h)))].slice(0, MAX_REPORTED_HASHES);
  const downloads = m.downloads
    .filter((d) => HASH_RE.test(d.hash))
    .slice(0, MAX_REPORTED_DOWNLOADS)
    .map((d) => ({ hash: d.hash, name: d.name.slice(0, 128), bytesDone: count(d.bytesDone), bytesTotal: count(d.bytesTotal) }));
  const rate = Number.isFinite(m.downloadBytesPerS) && m.downloadBytesPerS > 0 ? m.downloadBytesPerS : 0;
  return { cached, loaded: HASH_RE.test(m.loadedHash) ? m.loadedHash : '', downloads, bytesPerS: rate };
}

export class NodeModels {
  private readonly byNode = new Map<string, NodeModelState>();
  private turnCounts: Map<string, number> | undefined;

  /** `online`: the nodes connected now (a node that left keeps its last report, shown but not counted as a holder). */
  constructor(private readonly online: () => Iterable<string> = () => []) {}

  /** A node's report; undefined (a node without a model cache) forgets what it held. */
  update(nodeId: string, state: ModelCacheState | undefined): void {
    if (state) this.byNode.set(nodeId, nodeModelState(state));
    else this.byNode.delete(nodeId);
    this.turnCounts = undefined; // a report changes the answer even within a turn (tests feed several at once)
  }

  /** A node connected or left: holder counts are counted again. */
  connectedChanged(): void {
    this.turnCounts = undefined;
  }

  of(nodeId: string): NodeModelState | undefined {
    return this.byNode.get(nodeId);
  }

  /** Whether the node has the model in RAM, on disk, or on its way there. */
  static holds(state: NodeModelState | undefined, hash: string): boolean {
    return !!state && (state.loaded === hash || state.cached.includes(hash) || state.downloads.some((d) => d.hash === hash));
  }

  /** Connected nodes that hold `hash` (loaded or cached; a download in progress does not count yet). */
  holders(hash: string): string[] {
    const out: string[] = [];
    for (const id of this.online()) {
      const s = this.byNode.get(id);
      if (s && (s.loaded === hash || s.cached.includes(hash))) out.push(id);
    }
    return out;
  }

  /**
   * Every hash connected nodes hold, with how many hold it (one pass for the
   * scheduler). Each pick asks, and a fill of many nodes picks for each: the
   * answer is kept until the current turn of the event loop ends, or until a
   * report arrives or a node connects or leaves (update, connectedChanged).
   */
  holderCounts(): ReadonlyMap<string, number> {
    if (!this.turnCounts) {
      this.turnCounts = this.countHolders();
      setImmediate(() => (this.turnCounts = undefined));
    }
    return this.turnCounts;
  }

  private countHolders(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const id of this.online()) {
      const s = this.byNode.get(id);
      if (!s) continue;
      for (const h of new Set([...s.cached, ...(s.loaded ? [s.loaded] : [])])) counts.set(h, (counts.get(h) ?? 0) + 1);
    }
    return counts;
  }
}

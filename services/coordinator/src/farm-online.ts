/**
 * Which nodes are online farm-wide, for placement (a sweep fails only when
 * no capable node is left anywhere; exclusions are relaxed only when the
 * excluded nodes are the only capable ones). With several replicas, this
 * replica's own sessions are not the farm: the others' nodes come from the
 * database's node rows (online, capabilities as registered), kept for a
 * moment since a tick and every failure ask.
 */
import type { NodeEngine } from './store-engine/engine.js';
import type { OnlineNode } from './placement.js';
import { KeptPromise } from './kept-promise.js';

const KEEP_MS = 1_000;

interface RegisteredCaps {
  backends?: string[];
  models?: string[];
  vramMb?: number;
}

/**
 * `staleMs`: a row not touched for this long is not counted (its replica died
 * with it and nobody marked it offline; last_seen is rewritten every 10 s
 * while a node heartbeats, so give it the node timeout plus that).
 */
export function farmOnline(nodes: Pick<NodeEngine, 'listNodes'>, local: () => OnlineNode[], staleMs: number, now: () => number = Date.now): () => Promise<OnlineNode[]> {
  const remote = new KeptPromise(
    async () =>
      (await nodes.listNodes())
        .filter((n) => n.status === 'online' && now() - n.last_seen <= staleMs)
        .map((n) => {
          const caps = JSON.parse(n.capabilities_json) as RegisteredCaps;
          return { nodeId: n.id, caps: { backends: caps.backends ?? [], models: caps.models ?? [], vramMb: Number(caps.vramMb ?? 0) } };
        }),
    KEEP_MS,
    now,
  );
  return async () => {
    // This replica's sessions as they are now (with their model caches), then the rest of the farm.
    const mine = local();
    const seen = new Set(mine.map((n) => n.nodeId));
    return [...mine, ...(await remote.get()).filter((n) => !seen.has(n.nodeId))];
  };
}

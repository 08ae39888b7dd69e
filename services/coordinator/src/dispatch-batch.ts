/**
 * params.batch in dispatch: a node renders up to `batch` sibling jobs (one
 * prompt and params, several seeds) in one pass, so its prefetch must hold
 * whole batches: a node's capacity is slots × prefetchPerSlot × the batch
 * size of the last job leased to it, that batch bounded by what the node's
 * card holds (batchForVram, the rule the node's batcher applies too). Jobs of
 * a sweep lease in index order with seeds innermost, so consecutive picks
 * are the siblings the node needs. Kept in memory: after a coordinator
 * restart a node's first fill is at batch 1 and grows with its first lease.
 */
import { batchForVram } from '@nightshift/sweep';

/** The batch a node would render `paramsJson`'s job in: params.batch bounded by the card, 1 when it has none. */
export function jobBatch(paramsJson: string, vramMb: number): number {
  if (!paramsJson.includes('"batch"')) return 1; // the common case, without a parse
  let p: { batch?: unknown; width?: unknown; height?: unknown };
  try {
    p = JSON.parse(paramsJson) as typeof p;
  } catch {
    return 1;
  }
  if (typeof p.batch !== 'number' || !Number.isInteger(p.batch) || p.batch <= 1) return 1;
  if (typeof p.width !== 'number' || typeof p.height !== 'number') return p.batch;
  return batchForVram(p.width, p.height, p.batch, vramMb);
}

export class NodeBatches {
  private readonly sizes = new Map<string, number>();

  /** The batch size the node's capacity is counted in (1: plain prefetch). */
  of(nodeId: string): number {
    return this.sizes.get(nodeId) ?? 1;
  }

  /** Notes the job just leased to the node. */
  leased(nodeId: string, paramsJson: string, vramMb: number): void {
    const b = jobBatch(paramsJson, vramMb);
    if (b > 1) this.sizes.set(nodeId, b);
    else this.sizes.delete(nodeId);
  }
}

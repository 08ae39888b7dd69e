/** A node's render progress, relayed to live clients (with its preview, if small enough): cosmetic, nothing durable changes. */
import type { Logger } from '@nightshift/common';
import type { StoreEngine } from './store-engine/engine.js';
import type { Live } from './live.js';
import { MAX_PREVIEW_BYTES, type PreviewStore } from './previews.js';
import type { RequestOf } from './node-messages.js';

export interface ProgressDeps {
  engine: Pick<StoreEngine, 'getJob'>;
  live: Pick<Live, 'emit'>;
  previews?: Pick<PreviewStore, 'offer'> | undefined;
  log: Logger;
}

/** Only a job's holder speaks for it; an oversized preview is ignored (the node should have dropped it). */
export async function relayProgress(deps: ProgressDeps, nodeId: string, p: RequestOf<'progress'>): Promise<void> {
  const job = await deps.engine.getJob(p.jobId);
  if (!job || (job.node_id !== nodeId && job.copy_node_id !== nodeId)) return;
  const bytes = p.previewWebp.length;
  if (bytes > MAX_PREVIEW_BYTES) deps.log.debug({ node: nodeId, job: job.id, bytes }, 'preview over the size bound ignored');
  const preview = bytes && bytes <= MAX_PREVIEW_BYTES ? Buffer.from(p.previewWebp) : undefined;
  if (preview) deps.previews?.offer(job.id, preview);
  deps.live.emit({
    type: 'progress',
    sweepId: job.sweep_id,
    jobId: job.id,
    step: p.step,
    total: p.total,
    ...(preview ? { preview: preview.toString('base64') } : {}),
  });
}

/**
 * One relay at a time per node, the newest waiting: each progress message
 * costs a read (on PostgreSQL a round trip), and an untrusted node may send
 * thousands a second. Those that came while one was relayed are dropped but
 * the last, which is relayed next, so a client still sees the latest step.
 */
export class ProgressRelay {
  private readonly busy = new Map<string, RequestOf<'progress'> | undefined>();

  constructor(private readonly relay: (nodeId: string, p: RequestOf<'progress'>) => Promise<void>) {}

  /** Relays `p` now, or after the relay under way for this node (replacing any other waiting). */
  offer(nodeId: string, p: RequestOf<'progress'>): Promise<void> | undefined {
    if (this.busy.has(nodeId)) {
      this.busy.set(nodeId, p);
      return undefined;
    }
    this.busy.set(nodeId, undefined);
    return this.drain(nodeId, p);
  }

  private async drain(nodeId: string, first: RequestOf<'progress'>): Promise<void> {
    let next: RequestOf<'progress'> | undefined = first;
    try {
      while (next) {
        await this.relay(nodeId, next);
        next = this.busy.get(nodeId);
        this.busy.set(nodeId, undefined);
      }
    } finally {
      this.busy.delete(nodeId);
    }
  }
}

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

/** Jobs one node may have progress waiting for (a node renders at most MAX_SLOTS jobs at once; more are dropped). */
export const PROGRESS_WAITING_JOBS = 64;

/**
 * One relay at a time per node, each job's newest progress waiting: each
 * progress message costs a read (on PostgreSQL a round trip), and an
 * untrusted node may send thousands a second. Of a job's messages that came
 * while another was relayed only the newest is relayed next, so a client
 * still sees each job's latest step; at most PROGRESS_WAITING_JOBS jobs wait.
 */
export class ProgressRelay {
  /** Node → its jobs' newest waiting progress (the node is busy while it has an entry). */
  private readonly busy = new Map<string, Map<string, RequestOf<'progress'>>>();

  constructor(private readonly relay: (nodeId: string, p: RequestOf<'progress'>) => Promise<void>) {}

  /** Relays `p` now, or after the relays under way and waiting for this node (replacing its job's waiting one). */
  offer(nodeId: string, p: RequestOf<'progress'>): Promise<void> | undefined {
    const waiting = this.busy.get(nodeId);
    if (waiting) {
      if (waiting.has(p.jobId) || waiting.size < PROGRESS_WAITING_JOBS) waiting.set(p.jobId, p);
      return undefined;
    }
    this.busy.set(nodeId, new Map());
    return this.drain(nodeId, p);
  }

  private async drain(nodeId: string, first: RequestOf<'progress'>): Promise<void> {
    const waiting = this.busy.get(nodeId)!;
    let next: RequestOf<'progress'> | undefined = first;
    try {
      while (next) {
        await this.relay(nodeId, next);
        next = waiting.values().next().value;
        if (next) waiting.delete(next.jobId);
      }
    } finally {
      this.busy.delete(nodeId);
    }
  }
}

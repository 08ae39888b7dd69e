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

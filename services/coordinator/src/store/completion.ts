/**
 * Which result reports a node may make (nodes are not trusted). A node may
 * report only a job it holds: its lease, its straggler copy, or the lease it
 * held last (a report that crossed a lease moving on: the image is stored,
 * so the first report still wins). The keys must be the job's own objects.
 * Whether those objects exist is checked against storage by the hub.
 */
import { imageKey, thumbKey, upscaledKey } from '@nightshift/common';
import type { JobRow } from './rows.js';

export interface ReportedKeys {
  imageKey: string;
  thumbKey: string;
}

/** Why a report is refused, as a short, stable label (metrics) and the detail (logs, the node's cancel). */
export interface Refusal {
  reason: 'unknown job' | 'not held' | 'wrong key' | 'not stored';
  detail: string;
}

/** The objects a job writes: its image and thumbnail; an upscale writes its upscaled image only. */
export function ownKeys(job: Pick<JobRow, 'kind' | 'render_key'>): ReportedKeys {
  return job.kind === 'upscale' ? { imageKey: upscaledKey(job.render_key), thumbKey: '' } : { imageKey: imageKey(job.render_key), thumbKey: thumbKey(job.render_key) };
}

/** A node that holds the job now, as its lease or its copy, or held it last. */
export function heldBy(job: Pick<JobRow, 'node_id' | 'copy_node_id' | 'prev_node_id'>, nodeId: string): boolean {
  return job.node_id === nodeId || job.copy_node_id === nodeId || job.prev_node_id === nodeId;
}

/** Undefined when `nodeId` may report `job` done with these keys; otherwise why not. */
export function refuseReport(job: JobRow | undefined, nodeId: string, keys: ReportedKeys): Refusal | undefined {
  if (!job) return { reason: 'unknown job', detail: 'no such job' };
  if (!heldBy(job, nodeId)) return { reason: 'not held', detail: `job ${job.id} is not leased to node ${nodeId}` };
  const own = ownKeys(job);
  if (keys.imageKey !== own.imageKey || keys.thumbKey !== own.thumbKey) {
    return { reason: 'wrong key', detail: `reported keys ${JSON.stringify([keys.imageKey, keys.thumbKey])} are not the job's own ${JSON.stringify([own.imageKey, own.thumbKey])}` };
  }
  return undefined;
}

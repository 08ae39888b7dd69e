/**
 * The events the job lifecycle writes to the outbox, as (subject, msg id,
 * payload): built once here for both store engines (the SQLite Store's
 * sweeps.ts and jobs.ts, store-engine/postgres.ts), which the conformance
 * suite checks event by event.
 */
import { SUBJECTS, type ImageRenderedEvent } from '@nightshift/common';
import type { JobRow, SweepCounts, SweepStatus } from './rows.js';

export interface OutboxEvent {
  subject: string;
  msgId: string;
  payload: unknown;
}

export function sweepCreatedEvent(sweep: { id: string; name: string; kind: string }, jobs: number, now: number): OutboxEvent {
  return {
    subject: SUBJECTS.sweepCreated,
    msgId: `sweep.created.${sweep.id}`,
    payload: { sweepId: sweep.id, name: sweep.name, kind: sweep.kind, jobs, createdAt: new Date(now).toISOString() },
  };
}

export function sweepDoneEvent(sweepId: string, status: SweepStatus, counts: SweepCounts, now: number): OutboxEvent {
  return { subject: SUBJECTS.sweepDone, msgId: `sweep.done.${sweepId}`, payload: { sweepId, status, counts, finishedAt: new Date(now).toISOString() } };
}

/** image.rendered (msg id: the render key), or image.upscaled for an upscale job. */
export function imageEvent(job: JobRow, nodeId: string, r: { imageKey: string; renderMs: number; model?: string | undefined }, now: number): OutboxEvent {
  const base = {
    renderKey: job.render_key,
    key: r.imageKey,
    sweepId: job.sweep_id,
    jobId: job.id,
    prompt: job.prompt,
    seed: job.seed,
    params: JSON.parse(job.params_json) as Record<string, unknown>,
    backend: job.backend,
    model: r.model ?? job.model,
    node: nodeId,
    renderMs: r.renderMs,
    createdAt: new Date(now).toISOString(),
  };
  if (job.kind === 'upscale') return { subject: SUBJECTS.imageUpscaled, msgId: `upscaled.${job.render_key}`, payload: { ...base, sourceKey: job.source_key, scale: 4 } };
  const event: ImageRenderedEvent = base;
  return { subject: SUBJECTS.imageRendered, msgId: job.render_key, payload: event };
}

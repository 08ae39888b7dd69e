/**
 * Sweep operations shared by the HTTP and gRPC APIs, so both transports
 * validate, expand, store and report in exactly the same way.
 */
import { expandSweep, parseSpec } from '@nightshift/sweep';
import type { CoordinatorDeps } from './deps.js';
import type { SweepCounts, SweepRow, JobRow } from './store.js';

export interface SweepView {
  id: string;
  name: string;
  status: SweepRow['status'];
  priority: number;
  backend: string;
  total: number;
  counts: SweepCounts;
  createdAt: string;
  finishedAt: string | null;
}

export function submitSweep(deps: CoordinatorDeps, input: unknown): { id: string; jobs: number } {
  const spec = parseSpec(input);
  const jobs = expandSweep(spec, deps.config.NIGHTSHIFT_MAX_JOBS);
  const sweep = deps.store.createSweep(spec, jobs);
  deps.log.info({ sweep: sweep.id, jobs: jobs.length, name: sweep.name }, 'sweep submitted');
  deps.outbox.poke();
  deps.live.emit({ type: 'sweep', sweepId: sweep.id });
  deps.hub.dispatch();
  return { id: sweep.id, jobs: jobs.length };
}

export function sweepView(deps: CoordinatorDeps, row: SweepRow): SweepView {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    priority: row.priority,
    backend: row.backend,
    total: row.total,
    counts: deps.store.counts(row.id),
    createdAt: new Date(row.created_at).toISOString(),
    finishedAt: row.finished_at ? new Date(row.finished_at).toISOString() : null,
  };
}

export function cancelSweep(deps: CoordinatorDeps, id: string): boolean {
  if (!deps.store.getSweep(id)) return false;
  const running = deps.store.cancelSweep(id);
  deps.hub.cancelJobs(running, 'sweep cancelled');
  deps.outbox.poke();
  deps.live.emit({ type: 'sweep', sweepId: id });
  return true;
}

export interface ImageView {
  jobId: string;
  key: string;
  url: string;
  thumbUrl: string;
  renderKey: string;
  prompt: string;
  seed: number;
  params: Record<string, unknown>;
  node: string | null;
  renderMs: number | null;
  state: string;
}

export function imageView(job: JobRow, fileUrl: (key: string) => string): ImageView {
  return {
    jobId: job.id,
    key: job.image_key!,
    url: fileUrl(job.image_key!),
    thumbUrl: fileUrl(job.thumb_key!),
    renderKey: job.render_key,
    prompt: job.prompt,
    seed: job.seed,
    params: JSON.parse(job.params_json) as Record<string, unknown>,
    node: job.node_id,
    renderMs: job.render_ms,
    state: job.state,
  };
}

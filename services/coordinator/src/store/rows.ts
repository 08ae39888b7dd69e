/** The coordinator's rows as SQLite returns them, the inputs that make them, and their ids. */
import { randomBytes } from 'node:crypto';
import type { Refusal } from './completion.js';

export type SweepStatus = 'queued' | 'running' | 'paused' | 'done' | 'failed' | 'cancelled';
export type JobState = 'queued' | 'leased' | 'done' | 'skipped' | 'failed' | 'cancelled';

export interface SweepCounts {
  queued: number;
  running: number;
  done: number;
  failed: number;
  skipped: number;
  cancelled: number;
}

export interface SweepRow {
  id: string;
  name: string;
  spec_json: string;
  status: SweepStatus;
  priority: number;
  backend: string;
  total: number;
  created_at: number;
  finished_at: number | null;
  kind: 'render' | 'upscale';
  model: string;
  /** The registry model's content hash fixed at submit; '' for a model known to nodes by name only. */
  model_hash: string;
  /** That model's total size (the scheduler's fetch-time estimate); 0 when none. */
  model_bytes: number;
  /** The user who submitted it ('local' for the farm token, an open farm, and rows from before users). */
  owner: string;
}

export interface JobRow {
  id: string;
  sweep_id: string;
  idx: number;
  render_key: string;
  prompt: string;
  seed: number;
  params_json: string;
  axes_json: string;
  backend: string;
  model: string;
  state: JobState;
  node_id: string | null;
  lease_expires_at: number | null;
  attempts: number;
  not_before: number;
  error: string | null;
  log_tail: string | null;
  image_key: string | null;
  thumb_key: string | null;
  render_ms: number | null;
  started_at: number | null;
  finished_at: number | null;
  kind: 'render' | 'upscale';
  source_key: string | null;
  min_vram_mb: number;
  copy_node_id: string | null;
  copy_lease_expires_at: number | null;
  result_model: string | null;
  /** The sweep's registry model hash, sent to the node (JobAssignment.model_hash); '' when none. */
  model_hash: string;
  /** 1 when this job's completion published its image's event. */
  announced: number;
  /** The node that held the job last before its lease or copy moved on: its late report is still accepted. */
  prev_node_id: string | null;
}

export interface NodeRow {
  id: string;
  name: string;
  capabilities_json: string;
  status: 'online' | 'offline';
  last_seen: number;
  connected_at: number;
  jobs_done: number;
}

/** A new job row: an expanded render, or an upscale of an existing image. */
export interface NewJob {
  index: number;
  renderKey: string;
  prompt: string;
  seed: number;
  params: Record<string, unknown>;
  axes: Record<string, unknown>;
  backend: string;
  model: string;
  kind?: 'render' | 'upscale';
  sourceKey?: string;
  minVramMb: number;
}

export interface CompleteOutcome {
  /** The job became final with this report (false: it already was). */
  accepted: boolean;
  /** Nodes still rendering the same job (the straggler copy or the original) to cancel. */
  cancelOn: string[];
  /** The report was refused (nothing recorded): not this node's job, or not its keys. */
  refused?: Refusal;
}

/** A sweep status after which nothing changes. */
export const FINAL: SweepStatus[] = ['done', 'failed', 'cancelled'];

export function newSweepId(): string {
  return `sw-${randomBytes(6).toString('hex')}`;
}

export function jobId(sweepId: string, idx: number): string {
  return `${sweepId}-${String(idx).padStart(6, '0')}`;
}

/**
 * All reads and writes of sweeps, jobs, nodes and the outbox. Every state
 * change that others must hear about writes its event into the outbox in the
 * same transaction (DESIGN.md), so a crash can never lose or invent an event.
 */
import { randomBytes } from 'node:crypto';
import type { ExpandedJob, SweepSpec } from '@nightshift/sweep';
import { SUBJECTS, type ImageRenderedEvent } from '@nightshift/common';
import type { DB } from './db.js';

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

export const MAX_ATTEMPTS = 3;
const FINAL: SweepStatus[] = ['done', 'failed', 'cancelled'];

export function newSweepId(): string {
  return `sw-${randomBytes(6).toString('hex')}`;
}

export class Store {
  constructor(
    readonly db: DB,
    private readonly now: () => number = Date.now,
  ) {}

  private enqueue(subject: string, msgId: string, payload: unknown): void {
    this.db
      .prepare('INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES (?, ?, ?, ?)')
      .run(subject, msgId, JSON.stringify(payload), this.now());
  }

  /** Stores a validated, expanded sweep and its jobs atomically. */
  createSweep(spec: SweepSpec, jobs: ExpandedJob[], id = newSweepId()): SweepRow {
    const name = spec.name ?? spec.prompts[0]!.slice(0, 80);
    const now = this.now();
    const insertJob = this.db.prepare(
      `INSERT INTO jobs (id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued')`,
    );
    this.db.transaction(() => {
      this.db
        .prepare('INSERT INTO sweeps (id, name, spec_json, status, priority, backend, total, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(id, name, JSON.stringify(spec), 'queued', spec.priority, spec.backend, jobs.length, now);
      for (const j of jobs) {
        insertJob.run(jobId(id, j.index), id, j.index, j.renderKey, j.prompt, j.seed, JSON.stringify(j.params), JSON.stringify(j.axes), j.backend, j.model);
      }
      this.enqueue(SUBJECTS.sweepCreated, `sweep.created.${id}`, { sweepId: id, name, jobs: jobs.length, createdAt: new Date(now).toISOString() });
    })();
    return this.getSweep(id)!;
  }

  getSweep(id: string): SweepRow | undefined {
    return this.db.prepare('SELECT * FROM sweeps WHERE id = ?').get(id) as SweepRow | undefined;
  }

  listSweeps(): SweepRow[] {
    return this.db.prepare('SELECT * FROM sweeps ORDER BY created_at DESC, id').all() as SweepRow[];
  }

  counts(sweepId: string): SweepCounts {
    const c: SweepCounts = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };
    const rows = this.db.prepare('SELECT state, COUNT(*) AS n FROM jobs WHERE sweep_id = ? GROUP BY state').all(sweepId) as { state: JobState; n: number }[];
    for (const r of rows) c[r.state === 'leased' ? 'running' : r.state] += r.n;
    return c;
  }

  jobs(sweepId: string, states?: JobState[]): JobRow[] {
    if (states?.length) {
      return this.db
        .prepare(`SELECT * FROM jobs WHERE sweep_id = ? AND state IN (${states.map(() => '?').join(',')}) ORDER BY idx`)
        .all(sweepId, ...states) as JobRow[];
    }
    return this.db.prepare('SELECT * FROM jobs WHERE sweep_id = ? ORDER BY idx').all(sweepId) as JobRow[];
  }

  getJob(id: string): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  }

  /** Jobs currently leased to a node. */
  leasedTo(nodeId: string): JobRow[] {
    return this.db.prepare(`SELECT * FROM jobs WHERE node_id = ? AND state = 'leased'`).all(nodeId) as JobRow[];
  }

  /** Marks jobs leased to a node; the caller chose them with the scheduler. */
  lease(jobIds: string[], nodeId: string, leaseMs: number): JobRow[] {
    const now = this.now();
    const upd = this.db.prepare(
      `UPDATE jobs SET state = 'leased', node_id = ?, lease_expires_at = ?, started_at = ?, attempts = attempts + 1
       WHERE id = ? AND state = 'queued'`,
    );
    const leased: JobRow[] = [];
    this.db.transaction(() => {
      for (const id of jobIds) if (upd.run(nodeId, now + leaseMs, now, id).changes === 1) leased.push(this.getJob(id)!);
      const sweeps = new Set(leased.map((j) => j.sweep_id));
      for (const s of sweeps) this.db.prepare(`UPDATE sweeps SET status = 'running' WHERE id = ? AND status = 'queued'`).run(s);
    })();
    return leased;
  }

  /** Extends the leases of jobs a node says it still holds. */
  renewLeases(nodeId: string, jobIds: string[], leaseMs: number): void {
    const upd = this.db.prepare(`UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND node_id = ? AND state = 'leased'`);
    const until = this.now() + leaseMs;
    this.db.transaction(() => {
      for (const id of jobIds) upd.run(until, id, nodeId);
    })();
  }

  /** Requeues leased jobs whose lease ran out; returns them. */
  expireLeases(): JobRow[] {
    const expired = this.db.prepare(`SELECT * FROM jobs WHERE state = 'leased' AND lease_expires_at < ?`).all(this.now()) as JobRow[];
    this.requeue(expired.map((j) => j.id), 'lease expired');
    return expired;
  }

  requeue(jobIds: string[], reason: string): void {
    const upd = this.db.prepare(`UPDATE jobs SET state = 'queued', node_id = NULL, lease_expires_at = NULL, error = ? WHERE id = ? AND state = 'leased'`);
    this.db.transaction(() => {
      for (const id of jobIds) upd.run(reason, id);
    })();
  }

  /**
   * Records a finished render. Accepted from whichever node reports first, even
   * after its lease moved on, because the image is already safely in S3.
   * Returns false when the job was already final (nothing changes, no event).
   */
  completeJob(
    jobIdValue: string,
    nodeId: string,
    r: { imageKey: string; thumbKey: string; renderMs: number; skipped: boolean },
  ): boolean {
    const now = this.now();
    let changed = false;
    this.db.transaction(() => {
      const job = this.getJob(jobIdValue);
      if (!job || job.state === 'done' || job.state === 'skipped' || job.state === 'cancelled') return;
      this.db
        .prepare(
          `UPDATE jobs SET state = ?, node_id = ?, image_key = ?, thumb_key = ?, render_ms = ?, finished_at = ?, lease_expires_at = NULL, error = NULL WHERE id = ?`,
        )
        .run(r.skipped ? 'skipped' : 'done', nodeId, r.imageKey, r.thumbKey, r.renderMs, now, job.id);
      this.db.prepare('UPDATE nodes SET jobs_done = jobs_done + 1 WHERE id = ?').run(nodeId);
      if (!r.skipped) {
        const event: ImageRenderedEvent = {
          renderKey: job.render_key,
          key: r.imageKey,
          sweepId: job.sweep_id,
          jobId: job.id,
          prompt: job.prompt,
          seed: job.seed,
          params: JSON.parse(job.params_json) as Record<string, unknown>,
          backend: job.backend,
          model: job.model,
          node: nodeId,
          renderMs: r.renderMs,
          createdAt: new Date(now).toISOString(),
        };
        this.enqueue(SUBJECTS.imageRendered, job.render_key, event);
      }
      this.settleSweep(job.sweep_id);
      changed = true;
    })();
    return changed;
  }

  /** Records a failure: requeued with backoff until MAX_ATTEMPTS, then failed. */
  failJob(jobIdValue: string, nodeId: string, error: string, logTail: string): JobRow | undefined {
    const now = this.now();
    let result: JobRow | undefined;
    this.db.transaction(() => {
      const job = this.getJob(jobIdValue);
      if (!job || job.state !== 'leased' || job.node_id !== nodeId) return;
      const final = job.attempts >= MAX_ATTEMPTS;
      const backoff = Math.min(60_000, 1_000 * 2 ** (job.attempts - 1));
      this.db
        .prepare(
          `UPDATE jobs SET state = ?, node_id = CASE WHEN ? THEN node_id ELSE NULL END, lease_expires_at = NULL, error = ?, log_tail = ?, not_before = ?, finished_at = ? WHERE id = ?`,
        )
        .run(final ? 'failed' : 'queued', final ? 1 : 0, error, logTail, now + backoff, final ? now : null, job.id);
      if (final) this.settleSweep(job.sweep_id);
      result = this.getJob(job.id);
    })();
    return result;
  }

  /** Moves a sweep to its final status once no job is left to run. */
  private settleSweep(sweepId: string): void {
    const sweep = this.getSweep(sweepId);
    if (!sweep || FINAL.includes(sweep.status)) return;
    const c = this.counts(sweepId);
    if (c.queued + c.running > 0) return;
    const status: SweepStatus = c.done + c.skipped === 0 && c.failed > 0 ? 'failed' : 'done';
    const now = this.now();
    this.db.prepare('UPDATE sweeps SET status = ?, finished_at = ? WHERE id = ?').run(status, now, sweepId);
    this.enqueue(SUBJECTS.sweepDone, `sweep.done.${sweepId}`, { sweepId, status, counts: c, finishedAt: new Date(now).toISOString() });
  }

  /** Cancels a sweep: queued jobs are cancelled, leased ones returned for the caller to stop. */
  cancelSweep(sweepId: string): JobRow[] {
    let running: JobRow[] = [];
    this.db.transaction(() => {
      const sweep = this.getSweep(sweepId);
      if (!sweep || FINAL.includes(sweep.status)) return;
      running = this.jobs(sweepId, ['leased']);
      const now = this.now();
      this.db.prepare(`UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE sweep_id = ? AND state IN ('queued', 'leased')`).run(now, sweepId);
      this.db.prepare(`UPDATE sweeps SET status = 'cancelled', finished_at = ? WHERE id = ?`).run(now, sweepId);
      this.enqueue(SUBJECTS.sweepCancelled, `sweep.cancelled.${sweepId}`, { sweepId, cancelledAt: new Date(now).toISOString() });
    })();
    return running;
  }

  upsertNode(id: string, name: string, capabilities: unknown): void {
    const now = this.now();
    this.db
      .prepare(
        `INSERT INTO nodes (id, name, capabilities_json, status, last_seen, connected_at) VALUES (?, ?, ?, 'online', ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, capabilities_json = excluded.capabilities_json, status = 'online', last_seen = excluded.last_seen, connected_at = excluded.connected_at`,
      )
      .run(id, name, JSON.stringify(capabilities), now, now);
  }

  touchNode(id: string): void {
    this.db.prepare('UPDATE nodes SET last_seen = ? WHERE id = ?').run(this.now(), id);
  }

  setNodeStatus(id: string, status: 'online' | 'offline'): void {
    this.db.prepare('UPDATE nodes SET status = ?, last_seen = ? WHERE id = ?').run(status, this.now(), id);
  }

  listNodes(): NodeRow[] {
    return this.db.prepare('SELECT * FROM nodes ORDER BY name, id').all() as NodeRow[];
  }

  /** Marks every node offline; used at start, before nodes reconnect. */
  markAllNodesOffline(): void {
    this.db.prepare(`UPDATE nodes SET status = 'offline'`).run();
  }

  pendingEvents(limit: number): { id: number; subject: string; msg_id: string; payload: string }[] {
    return this.db.prepare('SELECT id, subject, msg_id, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?').all(limit) as {
      id: number;
      subject: string;
      msg_id: string;
      payload: string;
    }[];
  }

  markPublished(id: number): void {
    this.db.prepare('UPDATE outbox SET published_at = ? WHERE id = ?').run(this.now(), id);
  }
}

export function jobId(sweepId: string, idx: number): string {
  return `${sweepId}-${String(idx).padStart(6, '0')}`;
}

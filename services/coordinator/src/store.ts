/**
 * All reads and writes of sweeps, jobs, nodes and the outbox. Every state
 * change that others must hear about writes its event into the outbox in the
 * same transaction (DESIGN.md), so a crash can never lose or invent an event.
 * Once a transaction commits, `onCommit` listeners hear what it changed (the
 * outbox publisher wakes, live clients update); decisions about where jobs
 * run and what a failure does are placement.ts's.
 */
import { randomBytes } from 'node:crypto';
import { SUBJECTS, type ImageRenderedEvent } from '@nightshift/common';
import type { DB } from './db.js';
import type { Statement } from 'better-sqlite3';
import type { LiveEvent } from './live.js';
import { decideFailure, type Failure, type FailingNode, type FailurePolicy } from './placement.js';

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
  excluded_nodes: string;
  copy_node_id: string | null;
  copy_lease_expires_at: number | null;
  result_model: string | null;
  /** 1 when this job's completion published its image's event. */
  announced: number;
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

export interface StoreOptions extends FailurePolicy {
  now: () => number;
}

/** What one committed transaction changed, for `onCommit` listeners. */
export interface Committed {
  /** It wrote outbox rows: the publisher has events to send. */
  outbox: boolean;
  /** Job and node changes in order, then each changed sweep once. */
  events: LiveEvent[];
}

type Change = { kind: 'outbox' } | { kind: 'sweep'; sweepId: string } | { kind: 'event'; event: LiveEvent } | { kind: 'then'; run: () => void };

export const DEFAULT_STORE_OPTIONS: StoreOptions = { maxAttempts: 3, blocklistAfter: 3, now: Date.now };

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
}
const FINAL: SweepStatus[] = ['done', 'failed', 'cancelled'];

export function newSweepId(): string {
  return `sw-${randomBytes(6).toString('hex')}`;
}

export class Store {
  readonly opts: StoreOptions;
  private readonly now: () => number;
  private readonly statements = new Map<string, Statement>();
  private readonly listeners = new Set<(c: Committed) => void>();
  /** Changes written but not yet committed (rolled back with their savepoint). */
  private pending: Change[] = [];

  /** Prepared statements are compiled once: preparing costs more than running these queries. */
  private q(sql: string): Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) this.statements.set(sql, (stmt = this.db.prepare(sql)));
    return stmt;
  }

  constructor(
    readonly db: DB,
    opts: Partial<StoreOptions> = {},
  ) {
    this.opts = { ...DEFAULT_STORE_OPTIONS, ...opts };
    this.now = this.opts.now;
  }

  /**
   * Calls `listener` after every committed transaction that changed state,
   * once per transaction: a batch run in `transaction()` is heard of once, after it commits.
   */
  onCommit(listener: (c: Committed) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `work` in one transaction (a savepoint inside another); listeners
   * hear of its changes only once the outermost transaction commits.
   */
  transaction<T>(work: () => T): T {
    const mark = this.pending.length;
    let result: T;
    try {
      result = this.db.transaction(work)();
    } catch (err) {
      this.pending.length = mark;
      throw err;
    }
    this.flushCommitted();
    return result;
  }

  /**
   * Runs `fn` once the open transaction commits (at once when none is open;
   * never if it rolls back): a node must not hear of a lease a crash could undo.
   */
  afterCommit(fn: () => void): void {
    this.pending.push({ kind: 'then', run: fn });
    this.flushCommitted();
  }

  /** A single-statement write: committed at once unless a transaction is open. */
  private write<T>(work: () => T): T {
    const result = work();
    this.flushCommitted();
    return result;
  }

  private flushCommitted(): void {
    if (this.db.inTransaction || this.pending.length === 0) return;
    const changes = this.pending;
    this.pending = [];
    const sweeps = new Set<string>();
    const committed: Committed = { outbox: false, events: [] };
    const then: (() => void)[] = [];
    for (const c of changes) {
      if (c.kind === 'outbox') committed.outbox = true;
      else if (c.kind === 'sweep') sweeps.add(c.sweepId);
      else if (c.kind === 'event') committed.events.push(c.event);
      else then.push(c.run);
    }
    for (const sweepId of sweeps) committed.events.push({ type: 'sweep', sweepId });
    const changed = committed.outbox || committed.events.length > 0;
    // Everything runs even when one throws (the transaction is durable either way); the first error is rethrown.
    let failure: unknown;
    const attempt = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        failure ??= err;
      }
    };
    for (const fn of then) attempt(fn);
    if (changed) for (const listener of this.listeners) attempt(() => listener(committed));
    if (failure) throw failure;
  }

  private sweepChanged(sweepId: string): void {
    this.pending.push({ kind: 'sweep', sweepId });
  }

  private jobChanged(job: { id: string; sweep_id: string }, state: JobState): void {
    this.pending.push({ kind: 'event', event: { type: 'job', sweepId: job.sweep_id, jobId: job.id, state } });
    this.sweepChanged(job.sweep_id);
  }

  private nodeChanged(nodeId: string, status: string): void {
    this.pending.push({ kind: 'event', event: { type: 'node', nodeId, status } });
  }

  private enqueue(subject: string, msgId: string, payload: unknown): void {
    this.q('INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES (?, ?, ?, ?)')
      .run(subject, msgId, JSON.stringify(payload), this.now());
    this.pending.push({ kind: 'outbox' });
  }

  /** Stores a validated, expanded sweep (or an upscale batch) and its jobs atomically. */
  createSweep(
    sweep: { name: string; spec: unknown; priority: number; backend: string; model: string; kind?: 'render' | 'upscale' },
    jobs: NewJob[],
    id = newSweepId(),
  ): SweepRow {
    const now = this.now();
    const insertJob = this.q(
      `INSERT INTO jobs (id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state, kind, source_key, min_vram_mb)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)`,
    );
    this.transaction(() => {
      this.q('INSERT INTO sweeps (id, name, spec_json, status, priority, backend, total, created_at, kind, model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(id, sweep.name, JSON.stringify(sweep.spec), 'queued', sweep.priority, sweep.backend, jobs.length, now, sweep.kind ?? 'render', sweep.model);
      for (const j of jobs) {
        insertJob.run(
          jobId(id, j.index), id, j.index, j.renderKey, j.prompt, j.seed, JSON.stringify(j.params), JSON.stringify(j.axes),
          j.backend, j.model, j.kind ?? 'render', j.sourceKey ?? null, j.minVramMb,
        );
      }
      this.enqueue(SUBJECTS.sweepCreated, `sweep.created.${id}`, { sweepId: id, name: sweep.name, kind: sweep.kind ?? 'render', jobs: jobs.length, createdAt: new Date(now).toISOString() });
      this.sweepChanged(id);
    });
    return this.getSweep(id)!;
  }

  getSweep(id: string): SweepRow | undefined {
    return this.q('SELECT * FROM sweeps WHERE id = ?').get(id) as SweepRow | undefined;
  }

  listSweeps(): SweepRow[] {
    return this.q('SELECT * FROM sweeps ORDER BY created_at DESC, id').all() as SweepRow[];
  }

  counts(sweepId: string): SweepCounts {
    const c: SweepCounts = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };
    const rows = this.q('SELECT state, COUNT(*) AS n FROM jobs WHERE sweep_id = ? GROUP BY state').all(sweepId) as { state: JobState; n: number }[];
    for (const r of rows) c[r.state === 'leased' ? 'running' : r.state] += r.n;
    return c;
  }

  jobs(sweepId: string, states?: JobState[]): JobRow[] {
    if (states?.length) {
      return this.q(`SELECT * FROM jobs WHERE sweep_id = ? AND state IN (${states.map(() => '?').join(',')}) ORDER BY idx`)
        .all(sweepId, ...states) as JobRow[];
    }
    return this.q('SELECT * FROM jobs WHERE sweep_id = ? ORDER BY idx').all(sweepId) as JobRow[];
  }

  /** A finished render of this image (an upscale's source), if any. */
  renderedJob(renderKey: string): JobRow | undefined {
    return this.q(`SELECT * FROM jobs WHERE render_key = ? AND kind = 'render' AND state IN ('done', 'skipped') LIMIT 1`).get(renderKey) as JobRow | undefined;
  }

  getJob(id: string): JobRow | undefined {
    return this.q('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  }

  /** Jobs a node holds: leased to it, or a straggler copy running on it. */
  leasedTo(nodeId: string): JobRow[] {
    return this.q(`SELECT * FROM jobs WHERE state = 'leased' AND (node_id = ? OR copy_node_id = ?)`).all(nodeId, nodeId) as JobRow[];
  }

  /** How many jobs a node holds (leased or copies): its used prefetch capacity. */
  heldCount(nodeId: string): number {
    return (this.q(`SELECT COUNT(*) AS n FROM jobs WHERE state = 'leased' AND (node_id = ? OR copy_node_id = ?)`).get(nodeId, nodeId) as { n: number }).n;
  }

  /** Marks jobs leased to a node; the caller chose them with the scheduler. */
  lease(jobIds: string[], nodeId: string, leaseMs: number): JobRow[] {
    const now = this.now();
    const upd = this.q(
      `UPDATE jobs SET state = 'leased', node_id = ?, lease_expires_at = ?, started_at = ?, attempts = attempts + 1
       WHERE id = ? AND state = 'queued'`,
    );
    const leased: JobRow[] = [];
    this.transaction(() => {
      for (const id of jobIds) if (upd.run(nodeId, now + leaseMs, now, id).changes === 1) leased.push(this.getJob(id)!);
      const sweeps = new Set(leased.map((j) => j.sweep_id));
      for (const s of sweeps) {
        this.q(`UPDATE sweeps SET status = 'running' WHERE id = ? AND status = 'queued'`).run(s);
        // Leases show as progress; the sweep's running count changed.
        this.sweepChanged(s);
      }
    });
    return leased;
  }

  /** Gives an idle node a second copy of a slow job; the first result wins. */
  leaseCopy(jobIdValue: string, nodeId: string, leaseMs: number): JobRow | undefined {
    const changed = this.write(() =>
      this.q(`UPDATE jobs SET copy_node_id = ?, copy_lease_expires_at = ? WHERE id = ? AND state = 'leased' AND copy_node_id IS NULL AND node_id != ?`)
        .run(nodeId, this.now() + leaseMs, jobIdValue, nodeId).changes,
    );
    return changed ? this.getJob(jobIdValue) : undefined;
  }

  /** Extends the leases of jobs a node says it still holds. */
  renewLeases(nodeId: string, jobIds: string[], leaseMs: number): void {
    const until = this.now() + leaseMs;
    const main = this.q(`UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND node_id = ? AND state = 'leased'`);
    const copy = this.q(`UPDATE jobs SET copy_lease_expires_at = ? WHERE id = ? AND copy_node_id = ? AND state = 'leased'`);
    this.transaction(() => {
      for (const id of jobIds) {
        main.run(until, id, nodeId);
        copy.run(until, id, nodeId);
      }
    });
  }

  /**
   * After a coordinator restart: every lease gets at least `graceMs` so the
   * nodes that hold the work can reconnect before anything is requeued.
   */
  extendAllLeases(graceMs: number): number {
    const until = this.now() + graceMs;
    const n = this.q(`UPDATE jobs SET lease_expires_at = MAX(COALESCE(lease_expires_at, 0), ?) WHERE state = 'leased'`).run(until).changes;
    this.q(`UPDATE jobs SET copy_lease_expires_at = MAX(COALESCE(copy_lease_expires_at, 0), ?) WHERE state = 'leased' AND copy_node_id IS NOT NULL`).run(until);
    return n;
  }

  /**
   * Requeues leased jobs whose lease ran out and drops expired straggler
   * copies. A job whose copy is still alive is handed to the copy instead.
   */
  expireLeases(): JobRow[] {
    const now = this.now();
    const requeued: JobRow[] = [];
    this.transaction(() => {
      this.q(`UPDATE jobs SET copy_node_id = NULL, copy_lease_expires_at = NULL WHERE copy_node_id IS NOT NULL AND copy_lease_expires_at < ?`).run(now);
      const expired = this.q(`SELECT * FROM jobs WHERE state = 'leased' AND lease_expires_at < ?`).all(now) as JobRow[];
      for (const j of expired) if (!this.handToCopy(j, 'lease expired')) requeued.push(j);
    });
    return requeued;
  }

  /** A job losing its holder goes to its straggler copy if it has one (true), else back to the queue. */
  private handToCopy(j: JobRow, reason: string): boolean {
    if (!j.copy_node_id) {
      this.requeue([j.id], reason);
      return false;
    }
    this.q(`UPDATE jobs SET node_id = copy_node_id, lease_expires_at = copy_lease_expires_at, copy_node_id = NULL, copy_lease_expires_at = NULL WHERE id = ?`).run(j.id);
    return true;
  }

  requeue(jobIds: string[], reason: string): void {
    const upd = this.q(
      `UPDATE jobs SET state = 'queued', node_id = NULL, lease_expires_at = NULL, copy_node_id = NULL, copy_lease_expires_at = NULL, error = ? WHERE id = ? AND state = 'leased'`,
    );
    this.transaction(() => {
      for (const id of jobIds) {
        if (upd.run(reason, id).changes === 0) continue;
        this.jobChanged(this.q('SELECT id, sweep_id FROM jobs WHERE id = ?').get(id) as { id: string; sweep_id: string }, 'queued');
      }
    });
  }

  /** Requeues everything a node holds (it went silent); copies simply end. */
  releaseNode(nodeId: string, reason: string): JobRow[] {
    let released: JobRow[] = [];
    this.transaction(() => {
      this.q(`UPDATE jobs SET copy_node_id = NULL, copy_lease_expires_at = NULL WHERE copy_node_id = ? AND state = 'leased'`).run(nodeId);
      released = this.q(`SELECT * FROM jobs WHERE state = 'leased' AND node_id = ?`).all(nodeId) as JobRow[];
      for (const j of released) this.handToCopy(j, reason);
    });
    return released;
  }

  /** A node stopped answering: offline, what it held requeued (or handed to copies), node.down announced. */
  markNodeDown(nodeId: string, why: string): JobRow[] {
    return this.transaction(() => {
      this.q('UPDATE nodes SET status = ?, last_seen = ? WHERE id = ?').run('offline', this.now(), nodeId);
      const released = this.releaseNode(nodeId, `node ${nodeId} down: ${why}`);
      this.recordNodeEvent(SUBJECTS.nodeDown, nodeId, { why, requeued: released.length });
      this.nodeChanged(nodeId, 'down');
      return released;
    });
  }

  /**
   * Records a finished render. Accepted from whichever node reports first,
   * even after its lease moved on, because the image is already safely in S3;
   * the other holder (a straggler copy, or a node that got the job after a
   * lease expired) is told to stop. Every report is kept in `results`.
   */
  completeJob(
    jobIdValue: string,
    nodeId: string,
    r: { imageKey: string; thumbKey: string; renderMs: number; skipped: boolean; model?: string | undefined },
  ): CompleteOutcome {
    const now = this.now();
    const outcome: CompleteOutcome = { accepted: false, cancelOn: [] };
    this.transaction(() => {
      const job = this.getJob(jobIdValue);
      if (!job) return;
      const final = job.state === 'done' || job.state === 'skipped' || job.state === 'cancelled';
      const isCopy = job.copy_node_id === nodeId;
      this.q('INSERT INTO results (job_id, node_id, skipped, accepted, copy, at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(job.id, nodeId, r.skipped ? 1 : 0, final ? 0 : 1, isCopy ? 1 : 0, now);
      if (final) return;
      if (job.state === 'leased') outcome.cancelOn = [job.node_id, job.copy_node_id].filter((n): n is string => !!n && n !== nodeId);
      this.q(
          `UPDATE jobs SET state = ?, node_id = ?, image_key = ?, thumb_key = ?, render_ms = ?, finished_at = ?, lease_expires_at = NULL,
             copy_node_id = NULL, copy_lease_expires_at = NULL, error = NULL, result_model = ? WHERE id = ?`,
        )
        .run(r.skipped ? 'skipped' : 'done', nodeId, r.imageKey, r.thumbKey, r.renderMs, now, r.model ?? null, job.id);
      this.q('UPDATE nodes SET jobs_done = jobs_done + 1 WHERE id = ?').run(nodeId);
      // A skipped job's image may never have been announced: its renderer died between upload and report.
      if (!r.skipped || !this.announcedBefore(job)) {
        this.q('UPDATE jobs SET announced = 1 WHERE id = ?').run(job.id);
        this.enqueueImageEvent(job, nodeId, r, now);
      }
      this.jobChanged(job, r.skipped ? 'skipped' : 'done');
      this.settleSweep(job.sweep_id);
      outcome.accepted = true;
    });
    return outcome;
  }

  /** Whether some job already announced this job's image. */
  private announcedBefore(job: JobRow): boolean {
    return !!this.q(`SELECT 1 FROM jobs WHERE render_key = ? AND kind = ? AND announced = 1 LIMIT 1`).get(job.render_key, job.kind);
  }

  private enqueueImageEvent(job: JobRow, nodeId: string, r: { imageKey: string; renderMs: number; model?: string | undefined }, now: number): void {
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
    if (job.kind === 'upscale') {
      this.enqueue(SUBJECTS.imageUpscaled, `upscaled.${job.render_key}`, { ...base, sourceKey: job.source_key, scale: 4 });
    } else {
      const event: ImageRenderedEvent = base;
      this.enqueue(SUBJECTS.imageRendered, job.render_key, event);
    }
  }

  /**
   * Records a failure as placement.ts's `decideFailure` rules it: exclusion,
   * VRAM floor, backoff or the final failure, and the sweep blocklist.
   */
  failJob(jobIdValue: string, node: FailingNode, failure: Failure): { job: JobRow; blocklisted: boolean } | undefined {
    const now = this.now();
    let result: { job: JobRow; blocklisted: boolean } | undefined;
    this.transaction(() => {
      const job = this.getJob(jobIdValue);
      if (!job || job.state !== 'leased') return;
      if (job.copy_node_id === node.id) {
        // A straggler copy failed: the original is still running; just drop the copy.
        this.dropCopy(job.id);
        result = { job: this.getJob(job.id)!, blocklisted: false };
        return;
      }
      if (job.node_id !== node.id) return;
      const prior = this.q('SELECT failures, blocked FROM sweep_blocklist WHERE sweep_id = ? AND node_id = ?').get(job.sweep_id, node.id) as
        | { failures: number; blocked: number }
        | undefined;
      const d = decideFailure(job, node, failure, { priorFailures: prior?.failures ?? 0, blocked: !!prior?.blocked }, this.opts, now);
      const excluded = JSON.stringify(d.excluded);
      if (job.copy_node_id) {
        // The copy carries on as the job's only holder.
        this.q(
            `UPDATE jobs SET node_id = copy_node_id, lease_expires_at = copy_lease_expires_at, copy_node_id = NULL, copy_lease_expires_at = NULL,
               excluded_nodes = ?, min_vram_mb = ?, error = ?, log_tail = ? WHERE id = ?`,
          )
          .run(excluded, d.minVramMb, d.error, failure.logTail, job.id);
      } else {
        this.q(
            `UPDATE jobs SET state = ?, node_id = CASE WHEN ? THEN node_id ELSE NULL END, lease_expires_at = NULL, error = ?, log_tail = ?,
               not_before = ?, finished_at = ?, excluded_nodes = ?, min_vram_mb = ? WHERE id = ?`,
          )
          .run(d.final ? 'failed' : 'queued', d.final ? 1 : 0, d.error, failure.logTail, d.notBefore, d.final ? now : null, excluded, d.minVramMb, job.id);
        this.jobChanged(job, d.final ? 'failed' : 'queued');
      }
      this.q(
          `INSERT INTO sweep_blocklist (sweep_id, node_id, failures, blocked) VALUES (?, ?, 1, ?)
           ON CONFLICT (sweep_id, node_id) DO UPDATE SET failures = failures + 1, blocked = MAX(blocked, excluded.blocked)`,
        )
        .run(job.sweep_id, node.id, d.blocklist ? 1 : 0);
      this.sweepChanged(job.sweep_id);
      if (d.final) this.settleSweep(job.sweep_id);
      result = { job: this.getJob(job.id)!, blocklisted: d.blocklist };
    });
    return result;
  }

  blockedNodes(sweepId: string): string[] {
    return (this.q('SELECT node_id FROM sweep_blocklist WHERE sweep_id = ? AND blocked = 1').all(sweepId) as { node_id: string }[]).map((r) => r.node_id);
  }

  /** Fails a sweep's remaining queued jobs with a reason (no node can run them). */
  failQueued(sweepId: string, reason: string): number {
    let n = 0;
    this.transaction(() => {
      n = this.q(`UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE sweep_id = ? AND state = 'queued'`).run(reason, this.now(), sweepId).changes;
      this.sweepChanged(sweepId);
      this.settleSweep(sweepId, true);
    });
    return n;
  }

  /** Records a node event (up/down) in the outbox. */
  recordNodeEvent(subject: string, nodeId: string, extra: Record<string, unknown>): void {
    const now = this.now();
    this.write(() => this.enqueue(subject, `${subject}.${nodeId}.${now}`, { nodeId, at: new Date(now).toISOString(), ...extra }));
  }

  /** Ends a straggler copy (it failed, or its node no longer holds it); the original carries on. */
  dropCopy(jobIdValue: string): void {
    this.write(() => this.q('UPDATE jobs SET copy_node_id = NULL, copy_lease_expires_at = NULL WHERE id = ?').run(jobIdValue));
  }

  /** Queued jobs kept away from some nodes, with what they need (for relaxing exclusions). */
  queuedWithExclusions(limit = 1000): { id: string; sweep_id: string; backend: string; min_vram_mb: number; excluded_nodes: string }[] {
    return this.q(`SELECT id, sweep_id, backend, min_vram_mb, excluded_nodes FROM jobs WHERE state = 'queued' AND excluded_nodes != '[]' LIMIT ?`).all(limit) as {
      id: string;
      sweep_id: string;
      backend: string;
      min_vram_mb: number;
      excluded_nodes: string;
    }[];
  }

  clearExclusions(jobIdValue: string): void {
    this.write(() => this.q(`UPDATE jobs SET excluded_nodes = '[]' WHERE id = ?`).run(jobIdValue));
  }

  /** A sweep's queued jobs grouped by what they need (for `explain`). */
  queuedRequirements(sweepId: string): { backend: string; min_vram_mb: number; n: number }[] {
    return this.q(`SELECT backend, min_vram_mb, COUNT(*) AS n FROM jobs WHERE sweep_id = ? AND state = 'queued' GROUP BY backend, min_vram_mb`).all(sweepId) as {
      backend: string;
      min_vram_mb: number;
      n: number;
    }[];
  }

  /** Fails one queued job for good (for example: no card has enough VRAM). */
  failQueuedJob(jobIdValue: string, reason: string): void {
    this.transaction(() => {
      const job = this.getJob(jobIdValue);
      if (!job || job.state !== 'queued') return;
      this.q(`UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ?`).run(reason, this.now(), job.id);
      this.jobChanged(job, 'failed');
      this.settleSweep(job.sweep_id);
    });
  }

  /** Moves a sweep to its final status once no job is left to run. */
  private settleSweep(sweepId: string, noCapableNode = false): void {
    // Cheap check first (index on state, sweep_id): this runs on every result.
    const open = this.q(`SELECT 1 FROM jobs WHERE state IN ('queued', 'leased') AND sweep_id = ? LIMIT 1`).get(sweepId);
    if (open) return;
    const sweep = this.getSweep(sweepId);
    if (!sweep || FINAL.includes(sweep.status)) return;
    const c = this.counts(sweepId);
    const status: SweepStatus = noCapableNode || (c.done + c.skipped === 0 && c.failed > 0) ? 'failed' : 'done';
    const now = this.now();
    this.q('UPDATE sweeps SET status = ?, finished_at = ? WHERE id = ?').run(status, now, sweepId);
    this.sweepChanged(sweepId);
    this.enqueue(SUBJECTS.sweepDone, `sweep.done.${sweepId}`, { sweepId, status, counts: c, finishedAt: new Date(now).toISOString() });
  }

  /** Cancels a sweep: queued jobs are cancelled, leased ones returned for the caller to stop. */
  cancelSweep(sweepId: string): JobRow[] {
    let running: JobRow[] = [];
    this.transaction(() => {
      const sweep = this.getSweep(sweepId);
      if (!sweep || FINAL.includes(sweep.status)) return;
      running = this.jobs(sweepId, ['leased']);
      const now = this.now();
      this.q(`UPDATE jobs SET state = 'cancelled', finished_at = ?, lease_expires_at = NULL, copy_node_id = NULL, copy_lease_expires_at = NULL WHERE sweep_id = ? AND state IN ('queued', 'leased')`)
        .run(now, sweepId);
      this.q(`UPDATE sweeps SET status = 'cancelled', finished_at = ? WHERE id = ?`).run(now, sweepId);
      this.enqueue(SUBJECTS.sweepCancelled, `sweep.cancelled.${sweepId}`, { sweepId, cancelledAt: new Date(now).toISOString() });
      this.sweepChanged(sweepId);
    });
    return running;
  }

  /** Pause stops new dispatch (running jobs finish); resume restarts it. */
  setPaused(sweepId: string, paused: boolean): boolean {
    return this.transaction(() => {
      const sweep = this.getSweep(sweepId);
      if (!sweep || FINAL.includes(sweep.status)) return false;
      if (paused) {
        const ok = this.q(`UPDATE sweeps SET status = 'paused' WHERE id = ? AND status IN ('queued', 'running')`).run(sweepId).changes === 1 || sweep.status === 'paused';
        if (ok) this.sweepChanged(sweepId);
        return ok;
      }
      const started = (this.q(`SELECT COUNT(*) AS n FROM jobs WHERE sweep_id = ? AND state != 'queued'`).get(sweepId) as { n: number }).n > 0;
      this.q(`UPDATE sweeps SET status = ? WHERE id = ? AND status = 'paused'`).run(started ? 'running' : 'queued', sweepId);
      this.sweepChanged(sweepId);
      return true;
    });
  }

  setPriority(sweepId: string, priority: number): boolean {
    return this.write(() => {
      const ok = this.q('UPDATE sweeps SET priority = ? WHERE id = ?').run(priority, sweepId).changes === 1;
      if (ok) this.sweepChanged(sweepId);
      return ok;
    });
  }

  /** Finished jobs' render times and finish times, newest first, for ETA. */
  recentFinishes(sweepId: string, limit = 200): { finished_at: number; render_ms: number | null; node_id: string | null }[] {
    return this.q(`SELECT finished_at, render_ms, node_id FROM jobs WHERE sweep_id = ? AND state IN ('done', 'skipped') ORDER BY finished_at DESC LIMIT ?`)
      .all(sweepId, limit) as { finished_at: number; render_ms: number | null; node_id: string | null }[];
  }

  /** Every result report for a job (audits and tests: how often was it rendered?). */
  results(jobIdValue: string): { node_id: string; skipped: number; accepted: number; copy: number }[] {
    return this.q('SELECT node_id, skipped, accepted, copy FROM results WHERE job_id = ? ORDER BY id').all(jobIdValue) as {
      node_id: string;
      skipped: number;
      accepted: number;
      copy: number;
    }[];
  }

  upsertNode(id: string, name: string, capabilities: unknown): void {
    const now = this.now();
    this.write(() => {
      this.q(
        `INSERT INTO nodes (id, name, capabilities_json, status, last_seen, connected_at) VALUES (?, ?, ?, 'online', ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, capabilities_json = excluded.capabilities_json, status = 'online', last_seen = excluded.last_seen, connected_at = excluded.connected_at`,
      )
      .run(id, name, JSON.stringify(capabilities), now, now);
      this.nodeChanged(id, 'online');
    });
  }

  touchNode(id: string): void {
    this.q('UPDATE nodes SET last_seen = ? WHERE id = ?').run(this.now(), id);
  }

  setNodeStatus(id: string, status: 'online' | 'offline'): void {
    this.write(() => {
      this.q('UPDATE nodes SET status = ?, last_seen = ? WHERE id = ?').run(status, this.now(), id);
      this.nodeChanged(id, status);
    });
  }

  listNodes(): NodeRow[] {
    return this.q('SELECT * FROM nodes ORDER BY name, id').all() as NodeRow[];
  }

  /** Marks every node offline; used at start, before nodes reconnect. */
  markAllNodesOffline(): void {
    this.q(`UPDATE nodes SET status = 'offline'`).run();
  }

  pendingEvents(limit: number): { id: number; subject: string; msg_id: string; payload: string }[] {
    return this.q('SELECT id, subject, msg_id, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?').all(limit) as {
      id: number;
      subject: string;
      msg_id: string;
      payload: string;
    }[];
  }

  markPublished(ids: number[]): void {
    const stmt = this.q('UPDATE outbox SET published_at = ? WHERE id = ?');
    const now = this.now();
    this.db.transaction(() => {
      for (const id of ids) stmt.run(now, id);
    })();
  }
}

export function jobId(sweepId: string, idx: number): string {
  return `${sweepId}-${String(idx).padStart(6, '0')}`;
}

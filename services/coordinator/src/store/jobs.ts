/**
 * Jobs: leases and their renewal and expiry, straggler copies, results (the
 * first report wins; each image announced once), failures as placement.ts
 * decides them, exclusions (table job_exclusions: the nodes a job never goes
 * to again, kept while it can still run; a trigger drops them once it is final).
 */
import { decideFailure, type Failure, type FailingNode } from '../placement.js';
import { SweepStore } from './sweeps.js';
import type { CompleteOutcome, JobRow } from './rows.js';
import { ownKeys, refuseReport, type ReportedKeys } from './completion.js';
import { imageEvent } from './events.js';

/**
 * A lease renewed less than this long ago (ms; a quarter of the lease if
 * that is less) is not rewritten by a heartbeat (nor by renewLeases): at
 * 1,000 one-second nodes each heartbeat (every 2 s) rewrote the rows of the
 * two jobs its node held, as many job writes as there were leases, mostly for
 * jobs about to end. A lease so skipped still has the lease less this slack
 * left: a node whose heartbeats come closer together than that (2 s against
 * 25 s by default, where the node timeout, 15 s, comes first anyway) keeps it.
 */
export const LEASE_RENEW_SLACK_MS = 5_000;

/** A renewal to `until` rewrites only a lease that expires at or before this. */
export function renewDueBefore(until: number, leaseMs: number): number {
  // Whole milliseconds: PostgreSQL compares it with a BIGINT, and a lease need not be a multiple of 4.
  return until - Math.floor(Math.min(LEASE_RENEW_SLACK_MS, leaseMs / 4));
}

/**
 * A heartbeat's renewal: the named jobs by primary key, each holder's own
 * expiry only, and only where it is due (renewDueBefore). The unary `+` keeps
 * the planner off the state and node indexes, which would walk every leased
 * job of the farm (exported for its plan test).
 */
export const RENEW_LEASES_SQL = `
  UPDATE jobs SET lease_expires_at = CASE WHEN node_id = @node AND lease_expires_at <= @due THEN @until ELSE lease_expires_at END,
                  copy_lease_expires_at = CASE WHEN copy_node_id = @node AND copy_lease_expires_at <= @due THEN @until ELSE copy_lease_expires_at END
   WHERE id IN (SELECT value FROM json_each(@ids)) AND +state = 'leased'
     AND ((+node_id = @node AND lease_expires_at <= @due) OR (+copy_node_id = @node AND copy_lease_expires_at <= @due))`;

export class JobStore extends SweepStore {
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
    // Two index lookups: left to itself the planner walks every leased job (state first), a thousand and more on a big farm.
    return (
      this.q(
        `SELECT (SELECT COUNT(*) FROM jobs INDEXED BY jobs_leased_node WHERE state = 'leased' AND node_id = @node)
           + (SELECT COUNT(*) FROM jobs INDEXED BY jobs_copy WHERE copy_node_id = @node AND state = 'leased' AND node_id IS NOT @node) AS n`,
      ).get({ node: nodeId }) as { n: number }
    ).n;
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

  /**
   * Extends the leases of jobs a node says it still holds, its own leases and
   * its straggler copies alike: one statement per heartbeat, whatever it holds
   * (the ids arrive as one JSON array, each looked up by primary key).
   * Returns how many jobs it renewed.
   */
  renewLeases(nodeId: string, jobIds: string[], leaseMs: number): number {
    if (jobIds.length === 0) return 0;
    const until = this.now() + leaseMs;
    return this.write(() =>
      this.q(RENEW_LEASES_SQL).run({ node: nodeId, until, due: renewDueBefore(until, leaseMs), ids: JSON.stringify(jobIds) }).changes,
    );
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
      this.q(`UPDATE jobs SET prev_node_id = copy_node_id, copy_node_id = NULL, copy_lease_expires_at = NULL WHERE copy_node_id IS NOT NULL AND copy_lease_expires_at < ?`).run(now);
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
    this.q(`UPDATE jobs SET prev_node_id = node_id, node_id = copy_node_id, lease_expires_at = copy_lease_expires_at, copy_node_id = NULL, copy_lease_expires_at = NULL WHERE id = ?`).run(j.id);
    return true;
  }

  /**
   * Puts leased jobs back in the queue. `refundAttempt`: the node handed them
   * back because it left the farm (its schedule, a busy GPU, a pause), not
   * because they failed: that lease does not count towards NIGHTSHIFT_MAX_ATTEMPTS.
   */
  requeue(jobIds: string[], reason: string, opts: { refundAttempt?: boolean } = {}): void {
    const upd = this.q(
      `UPDATE jobs SET state = 'queued', prev_node_id = COALESCE(node_id, prev_node_id), node_id = NULL, lease_expires_at = NULL, copy_node_id = NULL, copy_lease_expires_at = NULL, error = ?,
         attempts = MAX(0, attempts - ?)
       WHERE id = ? AND state = 'leased'`,
    );
    this.transaction(() => {
      for (const id of jobIds) {
        if (upd.run(reason, opts.refundAttempt ? 1 : 0, id).changes === 0) continue;
        this.jobChanged(this.q('SELECT id, sweep_id FROM jobs WHERE id = ?').get(id) as { id: string; sweep_id: string }, 'queued');
      }
    });
  }

  /** Requeues everything a node holds (it went silent); copies simply end. */
  releaseNode(nodeId: string, reason: string): JobRow[] {
    let released: JobRow[] = [];
    this.transaction(() => {
      this.q(`UPDATE jobs SET prev_node_id = copy_node_id, copy_node_id = NULL, copy_lease_expires_at = NULL WHERE copy_node_id = ? AND state = 'leased'`).run(nodeId);
      released = this.q(`SELECT * FROM jobs WHERE state = 'leased' AND node_id = ?`).all(nodeId) as JobRow[];
      for (const j of released) this.handToCopy(j, reason);
    });
    return released;
  }

  /**
   * Records a finished render. Accepted from whichever holder reports first
   * (its lease, its straggler copy, or the node whose lease just moved on),
   * because the image is already safely in S3 (the hub checked); the other
   * holder is told to stop. A node that never held the job, or keys that are
   * not the job's own, are refused and nothing is recorded. Every other
   * report is kept in `results`.
   */
  completeJob(
    jobIdValue: string,
    nodeId: string,
    r: ReportedKeys & { renderMs: number; skipped: boolean; model?: string | undefined },
  ): CompleteOutcome {
    const now = this.now();
    const outcome: CompleteOutcome = { accepted: false, cancelOn: [] };
    this.transaction(() => {
      const job = this.getJob(jobIdValue);
      const refused = refuseReport(job, nodeId, r);
      if (refused || !job) {
        if (refused) outcome.refused = refused;
        return;
      }
      const final = job.state === 'done' || job.state === 'skipped' || job.state === 'cancelled';
      const isCopy = job.copy_node_id === nodeId;
      this.q('INSERT INTO results (job_id, node_id, skipped, accepted, copy, at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(job.id, nodeId, r.skipped ? 1 : 0, final ? 0 : 1, isCopy ? 1 : 0, now);
      if (final) return;
      if (job.state === 'leased') outcome.cancelOn = [job.node_id, job.copy_node_id].filter((n): n is string => !!n && n !== nodeId);
      // The holder told to stop may still report: its report is then audited, not refused.
      const other = outcome.cancelOn[0] ?? job.prev_node_id;
      const own = ownKeys(job);
      // A skipped job's image may never have been announced: its renderer died between upload and report.
      // (Asked before the update, which then marks it announced in the same write: the job itself counts only if it already was.)
      const announce = !r.skipped || !(job.announced === 1 || this.announcedBefore(job));
      this.q(
          `UPDATE jobs SET state = ?, node_id = ?, prev_node_id = ?, image_key = ?, thumb_key = ?, render_ms = ?, finished_at = ?, lease_expires_at = NULL,
             copy_node_id = NULL, copy_lease_expires_at = NULL, error = NULL, result_model = ?, announced = CASE WHEN ? THEN 1 ELSE announced END WHERE id = ?`,
        )
        .run(r.skipped ? 'skipped' : 'done', nodeId, other, own.imageKey, own.thumbKey, r.renderMs, now, r.model ?? null, announce ? 1 : 0, job.id);
      this.q('UPDATE nodes SET jobs_done = jobs_done + 1 WHERE id = ?').run(nodeId);
      if (announce) this.enqueueImageEvent(job, nodeId, { ...r, imageKey: own.imageKey }, now);
      this.jobChanged(job, r.skipped ? 'skipped' : 'done');
      this.settleSweep(job.sweep_id);
      outcome.accepted = true;
    });
    return outcome;
  }

  /**
   * Whether some job already announced this job's image. Only finished jobs
   * announce, so their render-key index answers (left to itself the planner
   * walks every announced image).
   */
  private announcedBefore(job: JobRow): boolean {
    return !!this.q(
      `SELECT 1 FROM jobs INDEXED BY jobs_render_key_finished WHERE render_key = ? AND state IN ('done', 'skipped') AND kind = ? AND announced = 1 LIMIT 1`,
    ).get(job.render_key, job.kind);
  }

  private enqueueImageEvent(job: JobRow, nodeId: string, r: { imageKey: string; renderMs: number; model?: string | undefined }, now: number): void {
    this.enqueueEvent(imageEvent(job, nodeId, r, now));
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
      const d = decideFailure({ ...job, excluded: this.exclusions(job.id) }, node, failure, { priorFailures: prior?.failures ?? 0, blocked: !!prior?.blocked }, this.opts, now);
      if (job.copy_node_id) {
        // The copy carries on as the job's only holder.
        this.q(
            `UPDATE jobs SET node_id = copy_node_id, lease_expires_at = copy_lease_expires_at, copy_node_id = NULL, copy_lease_expires_at = NULL,
               min_vram_mb = ?, error = ?, log_tail = ? WHERE id = ?`,
          )
          .run(d.minVramMb, d.error, failure.logTail, job.id);
      } else {
        this.q(
            `UPDATE jobs SET state = ?, node_id = CASE WHEN ? THEN node_id ELSE NULL END, lease_expires_at = NULL, error = ?, log_tail = ?,
               not_before = ?, finished_at = ?, min_vram_mb = ? WHERE id = ?`,
          )
          .run(d.final ? 'failed' : 'queued', d.final ? 1 : 0, d.error, failure.logTail, d.notBefore, d.final ? now : null, d.minVramMb, job.id);
        this.jobChanged(job, d.final ? 'failed' : 'queued');
      }
      // Kept while the job can still run (queued again, or carried on by its copy); a final job's are dropped by a trigger.
      if (!d.final || job.copy_node_id) {
        const exclude = this.q('INSERT OR IGNORE INTO job_exclusions (job_id, node_id) VALUES (?, ?)');
        for (const excludedNode of d.excluded) exclude.run(job.id, excludedNode);
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

  /** Ends a straggler copy (it failed, or its node no longer holds it); the original carries on. */
  dropCopy(jobIdValue: string): void {
    this.write(() => this.q('UPDATE jobs SET prev_node_id = COALESCE(copy_node_id, prev_node_id), copy_node_id = NULL, copy_lease_expires_at = NULL WHERE id = ?').run(jobIdValue));
  }

  /**
   * A node could not fetch the job's registry model (JobFailed.model_unavailable):
   * the job never goes to that node again, and the lease does not count as an
   * attempt. Its straggler copy, if any, carries on as the only holder.
   * Returns the job as it was, or undefined when the node did not hold it.
   */
  returnUnfetched(jobIdValue: string, nodeId: string, error: string): JobRow | undefined {
    let held: JobRow | undefined;
    this.transaction(() => {
      const job = this.getJob(jobIdValue);
      if (!job || job.state !== 'leased' || (job.node_id !== nodeId && job.copy_node_id !== nodeId)) return;
      held = job;
      this.q('INSERT OR IGNORE INTO job_exclusions (job_id, node_id) VALUES (?, ?)').run(job.id, nodeId);
      if (job.copy_node_id === nodeId) return this.dropCopy(job.id);
      if (job.copy_node_id) {
        this.q('UPDATE jobs SET node_id = copy_node_id, lease_expires_at = copy_lease_expires_at, copy_node_id = NULL, copy_lease_expires_at = NULL, error = ? WHERE id = ?').run(error, job.id);
        return;
      }
      this.q(
        `UPDATE jobs SET state = 'queued', prev_node_id = node_id, node_id = NULL, lease_expires_at = NULL, attempts = MAX(attempts - 1, 0), error = ?
         WHERE id = ?`,
      ).run(error, job.id);
      this.jobChanged(job, 'queued');
    });
    return held;
  }

  /** The nodes a job never goes to again. */
  exclusions(jobIdValue: string): string[] {
    return (this.q('SELECT node_id FROM job_exclusions WHERE job_id = ? ORDER BY node_id').all(jobIdValue) as { node_id: string }[]).map((r) => r.node_id);
  }

  /**
   * Queued jobs kept away from some nodes, with what they need (for relaxing
   * exclusions): read from job_exclusions, which holds only jobs that can still
   * run, so a tick never scans the queue (CROSS JOIN keeps it the outer loop).
   */
  queuedWithExclusions(limit = 1000): { id: string; sweep_id: string; backend: string; min_vram_mb: number; excluded: string[] }[] {
    const rows = this.q(
      `SELECT j.id, j.sweep_id, j.backend, j.min_vram_mb, json_group_array(x.node_id) AS excluded
         FROM job_exclusions x CROSS JOIN jobs j ON j.id = x.job_id
        WHERE j.state = 'queued'
        GROUP BY j.id
        LIMIT ?`,
    ).all(limit) as { id: string; sweep_id: string; backend: string; min_vram_mb: number; excluded: string }[];
    return rows.map((r) => ({ ...r, excluded: JSON.parse(r.excluded) as string[] }));
  }

  clearExclusions(jobIdValue: string): void {
    this.write(() => this.q('DELETE FROM job_exclusions WHERE job_id = ?').run(jobIdValue));
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

  /** Deletes up to `limit` result audit rows recorded before `before`; returns how many (retention.ts calls it in batches). */
  pruneResults(before: number, limit: number): number {
    return this.q('DELETE FROM results WHERE id IN (SELECT id FROM results WHERE at < ? ORDER BY at LIMIT ?)').run(before, limit).changes;
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
}

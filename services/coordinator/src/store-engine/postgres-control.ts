/**
 * The PostgreSQL engine's sweep control (cancel, pause, priority), what
 * placement reads and fails (blocklists, recent finishes, queued
 * requirements, exclusions to relax, sweeps no node can run), and what the
 * node hub counts (jobs held per node, leases extended after a restart),
 * each as store/sweeps.ts and store/jobs.ts do it on SQLite.
 */
import type pg from 'pg';
import { SUBJECTS } from '@nightshift/common';
import { FINAL, type JobRow, type SweepRow } from '../store/rows.js';
import { MAX_FLOORS } from '../store/sweeps.js';
import type { QueuedRequirement, QueuedWithExclusions, RecentFinish } from './engine.js';
import { enqueue, replicaLive, settleAfterCommit, settleSweep, type Q } from './postgres-helpers.js';
import { inTransaction, notTheDatabases } from './postgres-pool.js';
import { TurnBatches } from './turn-batches.js';
import { PARTS_LOCK_NAMESPACE, WAKE_CHANNEL } from './postgres-schema.js';

export class PgControl {
  private readonly heldCounts = new TurnBatches<string, number>((ids) => this.countHeld(ids), { alone: notTheDatabases });

  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  async cancelSweep(sweepId: string): Promise<JobRow[]> {
    const now = this.now();
    return inTransaction(this.pool, async (c) => {
      // Taken before any row: a part of the sweep being stored commits before this sees its jobs, or after, seeing the sweep cancelled.
      await lockSweepParts(c, sweepId);
      return cancelSweepIn(c, sweepId, now);
    });
  }

  async setPaused(sweepId: string, paused: boolean): Promise<boolean> {
    return inTransaction(this.pool, async (c) => {
      const sweep = (await c.query<SweepRow>('SELECT * FROM sweeps WHERE id = $1 FOR UPDATE', [sweepId])).rows[0];
      if (!sweep || FINAL.includes(sweep.status)) return false;
      if (paused) {
        const { rowCount } = await c.query(`UPDATE sweeps SET status = 'paused' WHERE id = $1 AND status IN ('queued', 'running')`, [sweepId]);
        return rowCount === 1 || sweep.status === 'paused';
      }
      const started = (await c.query(`SELECT 1 FROM sweep_counts WHERE sweep_id = $1 AND state <> 'queued' AND n > 0 LIMIT 1`, [sweepId])).rows.length > 0;
      const { rowCount } = await c.query(`UPDATE sweeps SET status = $1 WHERE id = $2 AND status = 'paused'`, [started ? 'running' : 'queued', sweepId]);
      // Its queued jobs can be picked again: replicas with idle nodes hear so at commit.
      if (rowCount) await c.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, 'jobs']);
      return true;
    });
  }

  async setPriority(sweepId: string, priority: number): Promise<boolean> {
    return (await this.pool.query('UPDATE sweeps SET priority = $1 WHERE id = $2', [priority, sweepId])).rowCount === 1;
  }

  async blockedNodes(sweepId: string): Promise<string[]> {
    return (await this.pool.query<{ node_id: string }>('SELECT node_id FROM sweep_blocklist WHERE sweep_id = $1 AND blocked = 1 ORDER BY node_id', [sweepId])).rows.map((r) => r.node_id);
  }

  async recentFinishes(sweepId: string, limit: number): Promise<RecentFinish[]> {
    return (
      await this.pool.query<RecentFinish>(
        `SELECT finished_at, render_ms, node_id FROM jobs WHERE sweep_id = $1 AND state IN ('done', 'skipped') ORDER BY finished_at DESC LIMIT $2`,
        [sweepId, limit],
      )
    ).rows;
  }

  async queuedRequirements(sweepId: string, floors?: readonly number[]): Promise<QueuedRequirement[]> {
    return (
      await this.pool.query<QueuedRequirement>(
        `SELECT s.backend, g.min_vram_mb, g.n
           FROM (SELECT min_vram_mb, COUNT(*)::int AS n FROM jobs WHERE sweep_id = $1 AND state = 'queued' AND ($2::int[] IS NULL OR min_vram_mb = ANY($2)) GROUP BY min_vram_mb) g, sweeps s
          WHERE s.id = $1
          ORDER BY g.min_vram_mb`,
        [sweepId, floors ?? null],
      )
    ).rows;
  }

  /** One probe of jobs_vram a floor (store/sweeps.ts's queuedFloors). */
  async queuedFloors(sweepId: string): Promise<Omit<QueuedRequirement, 'n'>[]> {
    return (
      await this.pool.query<Omit<QueuedRequirement, 'n'>>(
        `WITH RECURSIVE floors(v, k) AS (
           SELECT MIN(min_vram_mb), 0 FROM jobs WHERE sweep_id = $1 AND state = 'queued'
           UNION ALL
           SELECT (SELECT MIN(q.min_vram_mb) FROM jobs q WHERE q.sweep_id = $1 AND q.state = 'queued' AND q.min_vram_mb > f.v), f.k + 1
             FROM floors f WHERE f.v IS NOT NULL AND f.k < ${MAX_FLOORS})
         SELECT s.backend, f.v AS min_vram_mb FROM floors f, sweeps s WHERE f.v IS NOT NULL AND s.id = $1 ORDER BY f.v`,
        [sweepId],
      )
    ).rows;
  }

  async queuedWithExclusions(limit: number): Promise<QueuedWithExclusions[]> {
    // Read from job_exclusions, which holds only jobs that can still run: never a scan of the queue.
    return (
      await this.pool.query<QueuedWithExclusions>(
        `SELECT j.id, j.sweep_id, j.backend, j.min_vram_mb, array_agg(x.node_id ORDER BY x.node_id) AS excluded
           FROM job_exclusions x JOIN jobs j ON j.id = x.job_id
          WHERE j.state = 'queued'
          GROUP BY j.id
          ORDER BY j.id
          LIMIT $1`,
        [limit],
      )
    ).rows;
  }

  async clearExclusions(jobIdValue: string): Promise<void> {
    await this.pool.query('DELETE FROM job_exclusions WHERE job_id = $1', [jobIdValue]);
  }

  async failQueued(sweepId: string, reason: string): Promise<number> {
    const now = this.now();
    const failed = await inTransaction(this.pool, async (c) => {
      await lockSweepParts(c, sweepId);
      const { rowCount } = await c.query(`UPDATE jobs SET state = 'failed', error = $1, finished_at = $2 WHERE sweep_id = $3 AND state = 'queued'`, [reason, now, sweepId]);
      // A sweep still being stored: its later parts are failed with it (postgres-sweep-parts.ts).
      await c.query('UPDATE sweeps_storing SET failed = $2 WHERE sweep_id = $1', [sweepId, reason]);
      await settleSweep(c, sweepId, now, true);
      return rowCount ?? 0;
    });
    if (failed) await settleAfterCommit(this.pool, sweepId, now, true);
    return failed;
  }

  async failQueuedJob(jobIdValue: string, reason: string): Promise<void> {
    const now = this.now();
    const closed = await inTransaction(this.pool, async (c) => {
      const job = (await c.query<JobRow>('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', [jobIdValue])).rows[0];
      if (!job || job.state !== 'queued') return undefined;
      await c.query(`UPDATE jobs SET state = 'failed', error = $1, finished_at = $2 WHERE id = $3`, [reason, now, job.id]);
      await settleSweep(c, job.sweep_id, now);
      return job.sweep_id;
    });
    if (closed) await settleAfterCommit(this.pool, closed, now);
  }

  /** Batched with the other counts of its turn: every fill of a node asks first (node-dispatch.ts). */
  heldCount(nodeId: string): Promise<number> {
    return this.heldCounts.add(nodeId);
  }

  private async countHeld(nodeIds: readonly string[]): Promise<number[]> {
    const { rows } = await this.pool.query<{ id: string; n: number }>(
      // The copies' state test is a FILTER, not a WHERE: a WHERE naming state = 'leased' let the planner walk jobs_holder
      // (every leased job) for each node when its statistics said few were leased (2.8 ms a node at 100,000 jobs).
      `SELECT h.id, (SELECT COUNT(*) FROM jobs WHERE state = 'leased' AND node_id = h.id)
                  + (SELECT COUNT(*) FILTER (WHERE state = 'leased' AND node_id IS DISTINCT FROM h.id) FROM jobs WHERE copy_node_id = h.id) AS n
         FROM unnest($1::text[]) AS h (id)`,
      [[...new Set(nodeIds)]],
    );
    const held = new Map(rows.map((r) => [r.id, Number(r.n)]));
    return nodeIds.map((id) => held.get(id) ?? 0);
  }

  /**
   * A replica starting: the grace goes only to leases whose node no live
   * replica serves (the nodes of a replica that died, this one's before its
   * restart among them). Nodes connected to the replicas still running keep
   * their leases as their heartbeats renew them: a restart must not hold
   * back the requeue of a dead node's work anywhere else in the farm.
   */
  async extendAllLeases(graceMs: number): Promise<number> {
    const until = this.now() + graceMs;
    const unserved = (column: string) =>
      `NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = jobs.${column} AND n.status = 'online'
                     AND ${replicaLive('n.replica')})`;
    return inTransaction(this.pool, async (c) => {
      const { rowCount } = await c.query(`UPDATE jobs SET lease_expires_at = GREATEST(COALESCE(lease_expires_at, 0), $1) WHERE state = 'leased' AND ${unserved('node_id')}`, [until]);
      await c.query(`UPDATE jobs SET copy_lease_expires_at = GREATEST(COALESCE(copy_lease_expires_at, 0), $1) WHERE state = 'leased' AND copy_node_id IS NOT NULL AND ${unserved('copy_node_id')}`, [until]);
      return rowCount ?? 0;
    });
  }
}

/**
 * Cancels a sweep in `c`'s transaction (PgControl.cancelSweep, and a sweep
 * whose parts stopped short): its open jobs, then the sweep. Returns the
 * leased ones, whose nodes are told to stop. `cut` runs once those jobs are
 * locked and before the sweep is (postgres-sweep-parts.ts cuts a short
 * sweep's total and counters there); a sweep cut is cancelled even when
 * every job it has has ended.
 */
export async function cancelSweepIn(c: Q, sweepId: string, now: number, cut?: () => Promise<void>): Promise<JobRow[]> {
  // Jobs before their sweep, the order of the pick (its lease, then `started`) and of settleSweep after a completion:
  // taking the sweep first would deadlock with either. Locked before read, so one a concurrent pick leased a moment
  // ago is among those returned (its node is told to stop); one finished meanwhile drops out on re-check.
  const open = (await c.query<JobRow>(`SELECT * FROM jobs WHERE sweep_id = $1 AND state IN ('queued', 'leased') ORDER BY id FOR UPDATE`, [sweepId])).rows;
  await cut?.();
  const sweep = (await c.query<SweepRow>('SELECT * FROM sweeps WHERE id = $1 FOR UPDATE', [sweepId])).rows[0];
  if (!sweep || FINAL.includes(sweep.status)) return [];
  // Every job ended, the sweep not yet settled (its last closer settles after its commit): it ends as done, not cancelled.
  // Not one whose parts are still being stored (its jobs to come count as open), nor one cut short: those are cancelled, as on SQLite.
  if (!cut && !open.length && sweep.total > 0 && (await settleSweep(c, sweepId, now))) return [];
  await c.query(
    `UPDATE jobs SET state = 'cancelled', finished_at = $2, lease_expires_at = NULL, copy_node_id = NULL, copy_lease_expires_at = NULL WHERE id = ANY($1)`,
    [open.map((j) => j.id), now],
  );
  await c.query(`UPDATE sweeps SET status = 'cancelled', finished_at = $1 WHERE id = $2`, [now, sweepId]);
  await enqueue(c, { subject: SUBJECTS.sweepCancelled, msgId: `sweep.cancelled.${sweepId}`, payload: { sweepId, cancelledAt: new Date(now).toISOString() } }, now);
  return open.filter((j) => j.state === 'leased').sort((a, b) => a.idx - b.idx);
}

/**
 * The turn of a sweep's parts (postgres-sweep-parts.ts): taken first, before
 * any row, by each part stored, the sweep's cancel, the failure of its queued
 * jobs and the end of a sweep stored short, so each sees what the others did.
 */
export async function lockSweepParts(c: Q, sweepId: string): Promise<void> {
  await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PARTS_LOCK_NAMESPACE, sweepId]);
}

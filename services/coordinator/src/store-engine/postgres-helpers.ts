/**
 * The PostgreSQL engine's shared steps inside a transaction (or on the pool):
 * storing jobs, the outbox, counters, exclusions, settling a sweep, ending a
 * copy. `c` is a client in a transaction or the pool for one statement.
 */
import type pg from 'pg';
import { inTransaction } from './postgres-pool.js';
import { FINAL, type JobRow, type JobState, type SweepCounts, type SweepRow, type SweepStatus } from '../store/rows.js';
import { sweepCreatedEvent, sweepDoneEvent, type OutboxEvent } from '../store/events.js';
import { QuotaRaced } from '../store/limits.js';
import type { NewSweep } from './engine.js';
import { LOCK_NAMESPACE } from './postgres-schema.js';
import { writeDeliveries } from './postgres-webhooks.js';

export type Q = Pick<pg.ClientBase, 'query'>;


/**
 * A job losing its holder (`e`, the row as it was) goes to its straggler copy
 * if it has one, else back to the queue (the Store's handToCopy). The caller
 * sets `error`.
 */
export const HAND_ON = `state = CASE WHEN e.copy_node_id IS NULL THEN 'queued' ELSE 'leased' END,
  prev_node_id = COALESCE(e.node_id, e.prev_node_id), node_id = e.copy_node_id, lease_expires_at = e.copy_lease_expires_at,
  copy_node_id = NULL, copy_lease_expires_at = NULL`;

/** The users columns in SQLite's order (rows compare equal across engines). */
/** A users row as UserRow, `alias` naming the table: its running count is the sum of its shards (user_running). */
export const userColumns = (alias: string) =>
  `${alias}.name, ${alias}.admin, ${alias}.weight, ${alias}.quota_images, (SELECT COALESCE(SUM(r.n), 0) FROM user_running r WHERE r.owner = ${alias}.name) AS running, ${alias}.created_at`;

/**
 * "The job is leased", written so the planner cannot match it to a partial
 * index on state = 'leased' (jobs_holder, jobs_leased): a statement that
 * names its jobs by id reads them by primary key. With the plain test, and
 * statistics saying few jobs are leased (taken when a big sweep was all
 * queued), the planner walked every leased job's entry instead: 15 against
 * 5 ms for 50 nodes' heartbeats, bench/churned-pg.ts (the held counts' copies
 * count had the same trap, 142 against 8 ms: a FILTER there). It is
 * re-checked on the newest row version like any condition of a FOR UPDATE.
 */
export const LEASED = (alias: string) => `(${alias}.state || '') = 'leased'`;

/**
 * Whether the replica named by `ref` (an application_name, never NULL) still
 * has a session: how every replica tells a live one from a dead one (node
 * rows, leases' grace at start, sweeps being stored). An IN over one scan of
 * pg_stat_activity, not a scan per row.
 */
export const replicaLive = (ref: string) => `${ref} IN (SELECT application_name FROM pg_stat_activity WHERE application_name IS NOT NULL)`;

export const byId = (rows: JobRow[]): JobRow[] => rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

export async function dropCopyOf(c: Q, jobIdValue: string): Promise<void> {
  await c.query('UPDATE jobs SET prev_node_id = COALESCE(copy_node_id, prev_node_id), copy_node_id = NULL, copy_lease_expires_at = NULL WHERE id = $1', [jobIdValue]);
}

/** Writes an outbox row and the webhook deliveries it makes; `c` must be in a transaction when the event can reach a webhook. */
export async function enqueue(c: Q, e: OutboxEvent, now: number): Promise<void> {
  await c.query('INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES ($1, $2, $3, $4)', [e.subject, e.msgId, JSON.stringify(e.payload), now]);
  await writeDeliveries(c, e.subject, e.msgId, e.payload, now);
}

/**
 * Everything a node holds goes back (store/jobs.ts's releaseNode): its copies
 * end, its leases go to their copies or the queue. Its leases as they were, by id.
 * `c` must be in a transaction (the lock taken first holds to its end).
 */
export async function releaseNodeIn(c: Q, nodeId: string, reason: string): Promise<JobRow[]> {
  // Its leases and copies locked first, together, in id order (the order a batch of completions takes them).
  await c.query(`SELECT 1 FROM jobs WHERE state = 'leased' AND (node_id = $1 OR copy_node_id = $1) ORDER BY id FOR UPDATE`, [nodeId]);
  await c.query(`UPDATE jobs SET prev_node_id = copy_node_id, copy_node_id = NULL, copy_lease_expires_at = NULL WHERE copy_node_id = $1 AND state = 'leased'`, [nodeId]);
  const { rows } = await c.query<JobRow>(
    `WITH released AS (SELECT * FROM jobs WHERE state = 'leased' AND node_id = $1 ORDER BY id FOR UPDATE)
     UPDATE jobs j SET ${HAND_ON}, error = CASE WHEN e.copy_node_id IS NULL THEN $2 ELSE j.error END
       FROM released e WHERE j.id = e.id
     RETURNING e.*`,
    [nodeId, reason],
  );
  return byId(rows);
}

export async function countsOf(c: Q, sweepId: string): Promise<SweepCounts> {
  const counts: SweepCounts = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };
  const { rows } = await c.query<{ state: JobState; n: number }>('SELECT state, n FROM sweep_counts WHERE sweep_id = $1', [sweepId]);
  for (const r of rows) counts[r.state === 'leased' ? 'running' : r.state] += r.n;
  return counts;
}

export async function exclusionsOf(c: Q, jobIdValue: string): Promise<string[]> {
  return (await c.query<{ node_id: string }>('SELECT node_id FROM job_exclusions WHERE job_id = $1 ORDER BY node_id', [jobIdValue])).rows.map((r) => r.node_id);
}

export async function announcedBefore(c: Q, job: JobRow): Promise<boolean> {
  const { rows } = await c.query(`SELECT 1 FROM jobs WHERE render_key = $1 AND state IN ('done', 'skipped') AND kind = $2 AND announced = 1 LIMIT 1`, [job.render_key, job.kind]);
  return rows.length > 0;
}

/** Images `owner` submitted since `since`: the jobs of their sweeps created since then (daily quotas). */
export async function imagesSubmittedSince(c: Q, owner: string, since: number): Promise<number> {
  return (await c.query<{ n: number }>('SELECT COALESCE(SUM(total), 0) AS n FROM sweeps WHERE owner = $1 AND created_at >= $2', [owner, since])).rows[0]!.n;
}

/** A row for each state of the sweep `ref` names that still has jobs to run (sweep_counts: the shards' sums). */
export const openJobsOf = (ref: string) => `SELECT 1 FROM sweep_counts c WHERE c.sweep_id = ${ref} AND c.state IN ('queued', 'leased') AND c.n > 0`;

/** Whether any of the sweep's jobs is queued or leased, as far as `c` sees. */
async function hasOpenJobs(c: Q, sweepId: string): Promise<boolean> {
  return (await c.query(`${openJobsOf('$1')} LIMIT 1`, [sweepId])).rows.length > 0;
}

/** Moves a sweep to its final status once no job is left to run (the rule of store/sweeps.ts). */
export async function settleSweep(c: Q, sweepId: string, now: number, noCapableNode = false): Promise<boolean> {
  if (await hasOpenJobs(c, sweepId)) return false;
  // The row lock makes replicas settling the same sweep take turns: the second sees it final.
  const sweep = (await c.query<SweepRow>('SELECT * FROM sweeps WHERE id = $1 FOR UPDATE', [sweepId])).rows[0];
  if (!sweep || FINAL.includes(sweep.status)) return false;
  const counts = await countsOf(c, sweepId);
  const status: SweepStatus = noCapableNode || (counts.done + counts.skipped === 0 && counts.failed > 0) ? 'failed' : 'done';
  await c.query('UPDATE sweeps SET status = $1, finished_at = $2 WHERE id = $3', [status, now, sweepId]);
  await enqueue(c, sweepDoneEvent(sweepId, status, counts, now), now);
  return true;
}

/**
 * Settles a sweep again once the transaction that closed one of its jobs has
 * committed. The counters are in shards (postgres-schema.ts), so the last two
 * jobs finishing at once no longer wait for each other: inside its own
 * transaction each still sees the other's job open, and neither would settle
 * the sweep. Asked after commit, the last of them to commit sees every other.
 * (A coordinator that dies in between leaves the sweep to engine.settleIdleSweeps, which the hub's tick calls.)
 * True when it settled the sweep. It never throws: the caller's own change is
 * committed already, and a sweep it failed to settle is settled by the tick.
 */
export async function settleAfterCommit(pool: pg.Pool, sweepId: string, now: number, noCapableNode = false): Promise<boolean> {
  try {
    if (await hasOpenJobs(pool, sweepId)) return false;
    return await inTransaction(pool, (c) => settleSweep(c, sweepId, now, noCapableNode));
  } catch {
    return false;
  }
}

/** A new sweep's row, counting `total` jobs, in `c`'s transaction (an owner's quota-bound submissions take turns first). */
export async function insertSweepIn(c: Q, sweep: NewSweep, id: string, total: number, now: number): Promise<void> {
  // One owner's quota-bound submissions take turns, whichever replica they reach: the later one counts the earlier.
  if (sweep.quota) await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, `quota:${sweep.owner ?? 'local'}`]);
  await c.query(
    `INSERT INTO sweeps (id, name, spec_json, status, priority, backend, total, created_at, kind, model, model_hash, model_bytes, owner)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
    [id, sweep.name, JSON.stringify(sweep.spec), 'queued', sweep.priority, sweep.backend, total, now, sweep.kind ?? 'render', sweep.model, sweep.modelHash ?? '', sweep.modelBytes ?? 0, sweep.owner ?? 'local'],
  );
}

/** A new sweep's quota check and sweep.created event, once its row counts all `total` of its jobs. */
export async function openSweepIn(c: Q, sweep: NewSweep, id: string, total: number, now: number): Promise<void> {
  if (sweep.quota) {
    const used = await imagesSubmittedSince(c, sweep.owner ?? 'local', sweep.quota.since);
    if (used > sweep.quota.imagesPerDay) throw new QuotaRaced(used - total, total, sweep.quota);
  }
  await enqueue(c, sweepCreatedEvent({ id, name: sweep.name, kind: sweep.kind ?? 'render' }, total, now), now);
}

/**
 * The scheduler's rule (scheduler.ts) as one PostgreSQL statement that picks
 * the next job for a node and leases it:
 *   1. active sweeps with the node's backend it is not blocklisted for, whose
 *      smallest queued VRAM floor fits its card (one index probe, jobs_vram);
 *   2. by priority, then a model the node has loaded (batching by model),
 *      then fewest running (the sweep's counter), then the oldest;
 *   3. within the first such sweep that has one, the first queued job by
 *      index, past its backoff, fitting the card, not excluded for the node.
 * The job row is taken FOR UPDATE SKIP LOCKED: a concurrent pick on another
 * connection or replica passes over it to the next job instead of waiting
 * for it, so no job is leased twice and pickers do not queue behind one
 * another. The sweeps come ordered into a LATERAL nested loop, so the walk
 * stops at the first sweep that yields a job (LIMIT 1) and locks nothing in
 * the sweeps after it; the outer ORDER BY repeats the inner one, which makes
 * the order a guarantee rather than a plan's habit, and the planner satisfies
 * it from the inner sort without evaluating every sweep (EXPLAIN: Limit →
 * Nested Loop → Sort).
 *
 * $1 node id, $2 backends text[], $3 VRAM MB, $4 loaded models text[], $5 now, $6 lease expiry.
 */
export const PICK_AND_LEASE_SQL = `
WITH picked AS (
  SELECT j.id, s.id AS sweep_id
    FROM (
      SELECT s.id, s.priority, s.created_at,
             COALESCE((SELECT c.n FROM sweep_counts c WHERE c.sweep_id = s.id AND c.state = 'leased'), 0) AS running,
             (s.model = ANY($4::text[])) AS model_loaded
        FROM sweeps s
       WHERE s.status IN ('queued', 'running')
         AND s.backend = ANY($2::text[])
         AND NOT EXISTS (SELECT 1 FROM sweep_blocklist b WHERE b.sweep_id = s.id AND b.node_id = $1 AND b.blocked = 1)
         AND (SELECT MIN(q.min_vram_mb) FROM jobs q WHERE q.sweep_id = s.id AND q.state = 'queued') <= $3
       ORDER BY s.priority DESC, model_loaded DESC, running ASC, s.created_at, s.id
    ) s
    CROSS JOIN LATERAL (
      SELECT j.id
        FROM jobs j
       WHERE j.sweep_id = s.id AND j.state = 'queued'
         AND j.not_before <= $5
         AND j.min_vram_mb <= $3
         AND NOT EXISTS (SELECT 1 FROM job_exclusions x WHERE x.job_id = j.id AND x.node_id = $1)
       ORDER BY j.idx
       LIMIT 1
       FOR UPDATE OF j SKIP LOCKED
    ) j
   ORDER BY s.priority DESC, s.model_loaded DESC, s.running ASC, s.created_at, s.id
   LIMIT 1
),
leased AS (
  UPDATE jobs SET state = 'leased', node_id = $1, lease_expires_at = $6, started_at = $5, attempts = attempts + 1
    FROM picked
   WHERE jobs.id = picked.id
  RETURNING jobs.*
),
started AS (
  UPDATE sweeps SET status = 'running' FROM picked WHERE sweeps.id = picked.sweep_id AND sweeps.status = 'queued'
)
SELECT * FROM leased`;

/**
 * The scheduler's rule (scheduler.ts) as one PostgreSQL statement that picks
 * the next job for a node and leases it:
 *   1. active sweeps with the node's backend it is not blocklisted for, whose
 *      smallest queued VRAM floor fits its card (one index probe, jobs_vram),
 *      and whose registry model is held or worth fetching (model-placement.ts);
 *   2. priority as far as it reaches across people (an admin's in full, a
 *      user's capped at 0), then fair share between people (the user whose
 *      running jobs, one more counted, are the smallest part of their weight),
 *      then that user's own priority, then the model on this node (loaded,
 *      held, to be fetched), then fewest running (the sweep's counter), then
 *      the oldest;
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
 * $1 node id, $2 backends text[], $3 VRAM MB, $4 model names text[], $5 now, $6 lease expiry,
 * then rule 4 (pickModelValues): $7 loaded hash, $8 held hashes text[], $9/$10 other holders'
 * hashes and counts, $11 this node's download rate (bytes/s), $12 assumed job time (ms).
 */
import { modelParams } from '../model-placement.js';
import type { PickModels } from './engine.js';

/** A sweep's registry model is held by the node: loaded, cached, or downloading. */
const HELD = `(s.model_hash = $7 OR s.model_hash = ANY($8::text[]))`;
const HOLDERS = `(SELECT h.n FROM unnest($9::text[], $10::int[]) AS h (hash, n) WHERE h.hash = s.model_hash)`;

/** The order of rule 2, as the sweeps subquery's and the outer query's ORDER BY. */
const SWEEP_ORDER = 'reach DESC, share ASC, priority DESC, model_affinity DESC, running ASC, created_at, id';
const sweepOrder = (alias: string) => SWEEP_ORDER.split(', ').map((k) => `${alias}.${k}`).join(', ');

/**
 * Rule 1 and 2: the sweeps a node of these caps may take a job from, in the
 * order it takes them. `blocklist` leaves out those blocklisted for node $1
 * (a batch leaves such nodes to pick alone, PICK_MANY_SQL).
 */
function candidateSweeps(blocklist: boolean): string {
  return `
      SELECT s.id, s.priority, s.created_at,
             COALESCE((SELECT c.n FROM sweep_counts c WHERE c.sweep_id = s.id AND c.state = 'leased'), 0) AS running,
             CASE WHEN COALESCE(u.admin, 0) = 1 THEN s.priority ELSE LEAST(s.priority, 0) END AS reach,
             (COALESCE((SELECT SUM(r.n) FROM user_running r WHERE r.owner = u.name), 0) + 1.0) / COALESCE(u.weight, 1) AS share,
             CASE WHEN s.model_hash = '' THEN (s.model = ANY($4::text[]))::int
                  WHEN s.model_hash = $7 THEN 2
                  WHEN ${HELD} THEN 1
                  ELSE 0 END AS model_affinity
        FROM sweeps s LEFT JOIN users u ON u.name = s.owner
       WHERE s.status IN ('queued', 'running')
         AND s.backend = ANY($2::text[])${blocklist ? `
         AND NOT EXISTS (SELECT 1 FROM sweep_blocklist b WHERE b.sweep_id = s.id AND b.node_id = $1 AND b.blocked = 1)` : ''}
         AND (s.model_hash = '' OR ${HELD} OR COALESCE(${HOLDERS}, 0) = 0
              OR COALESCE((SELECT c.n FROM sweep_counts c WHERE c.sweep_id = s.id AND c.state = 'queued'), 0)
                 * COALESCE((SELECT AVG(f.render_ms) FROM (SELECT r.render_ms FROM jobs r WHERE r.sweep_id = s.id AND r.state IN ('done', 'skipped')
                               AND r.render_ms > 0 ORDER BY r.finished_at DESC LIMIT 20) f), $12::float8)
                 / NULLIF(${HOLDERS}, 0)
                 >= s.model_bytes * 1000.0 / $11::float8)
         AND (SELECT MIN(q.min_vram_mb) FROM jobs q WHERE q.sweep_id = s.id AND q.state = 'queued') <= $3`;
}

/** Rule 3 without exclusions: sweep s's queued jobs past their backoff ($5) that fit the card ($3). */
const QUEUED_FITTING = `j.sweep_id = s.id AND j.state = 'queued'
         AND j.not_before <= $5
         AND j.min_vram_mb <= $3`;

/** What a lease writes on its job, for \`node\`: until $6, begun at $5. */
const leaseTo = (node: string) => `state = 'leased', node_id = ${node}, lease_expires_at = $6, started_at = $5, attempts = attempts + 1`;

export const PICK_AND_LEASE_SQL = `
WITH picked AS (
  SELECT j.id, s.id AS sweep_id
    FROM (${candidateSweeps(true)}
       ORDER BY ${SWEEP_ORDER}
    ) s
    CROSS JOIN LATERAL (
      SELECT j.id
        FROM jobs j
       WHERE ${QUEUED_FITTING}
         AND NOT EXISTS (SELECT 1 FROM job_exclusions x WHERE x.job_id = j.id AND x.node_id = $1)
       ORDER BY j.idx
       LIMIT 1
       FOR UPDATE OF j SKIP LOCKED
    ) j
   ORDER BY ${sweepOrder('s')}
   LIMIT 1
),
leased AS (
  UPDATE jobs SET ${leaseTo('$1')}
    FROM picked
   WHERE jobs.id = picked.id
  RETURNING jobs.*
),
started AS (
  UPDATE sweeps SET status = 'running' FROM picked WHERE sweeps.id = picked.sweep_id AND sweeps.status = 'queued'
)
SELECT * FROM leased`;

/**
 * The picks of several nodes with the same caps and rule-4 values, asked in
 * one turn, as one statement (postgres-pick-batches.ts): a statement's fixed
 * cost (its plan's start, each statement trigger on jobs, a commit) was most
 * of a pick's (bench/pick-batch-pg.ts). $1 is the nodes' ids in the order
 * they asked; $2–$12 as PICK_AND_LEASE_SQL's.
 *
 * A node blocklisted for an open sweep or excluded from any job is not
 * picked for here but named in the \`alone\` column of a row of its own: its
 * pick depends on it alone, and it picks with PICK_AND_LEASE_SQL. The others
 * take the first jobs of the sweeps in rule 2's order, one each, the first
 * node to ask the first job: what as many picks on as many connections,
 * begun at the same moment, would get (each reads the counters as they were
 * and passes over the jobs the others locked). Only the sweeps the batch
 * needs are walked, in each at most as many jobs locked as there are nodes
 * to serve, and the sweeps it starts are locked in id order (two replicas'
 * batches starting the same sweeps cannot deadlock; FOR NO KEY UPDATE, as
 * an UPDATE takes, so a part of the sweep being stored is not waited for).
 * The outer ORDER BY repeats the sweeps', as the single pick's does; within
 * the last sweep it reaches, which jobs fall inside the Limit is the
 * lateral's index order only while the Limit sits right on the nested loop,
 * as the planner has it for the plan a named statement starts with and for
 * the generic one (postgres-pick-batches.test.ts checks both): ordering by
 * index there too made the planner sort the whole join, walking every sweep.
 */
export const PICK_MANY_SQL = `
WITH asking AS (
  SELECT a.node, a.ord FROM unnest($1::text[]) WITH ORDINALITY AS a (node, ord)
),
alone AS (
  SELECT a.node, a.ord FROM asking a
   WHERE EXISTS (SELECT 1 FROM sweep_blocklist b JOIN sweeps s ON s.id = b.sweep_id
                  WHERE b.node_id = a.node AND b.blocked = 1 AND s.status IN ('queued', 'running'))
      OR EXISTS (SELECT 1 FROM job_exclusions x WHERE x.node_id = a.node)
),
plain AS (
  SELECT a.node, row_number() OVER (ORDER BY a.ord) AS k FROM asking a WHERE NOT EXISTS (SELECT 1 FROM alone l WHERE l.ord = a.ord)
),
picked AS (
  SELECT j.id, s.id AS sweep_id, s.rank, j.idx
    FROM (
      SELECT c.*, row_number() OVER (ORDER BY ${sweepOrder('c')}) AS rank
        FROM (${candidateSweeps(false)}
        ) c
       ORDER BY ${sweepOrder('c')}
    ) s
    CROSS JOIN LATERAL (
      SELECT j.id, j.idx
        FROM jobs j
       WHERE ${QUEUED_FITTING}
       ORDER BY j.idx
       LIMIT (SELECT COUNT(*) FROM plain)
       FOR UPDATE OF j SKIP LOCKED
    ) j
   ORDER BY ${sweepOrder('s')}
   LIMIT (SELECT COUNT(*) FROM plain)
),
numbered AS (
  SELECT p.id, p.sweep_id, row_number() OVER (ORDER BY p.rank, p.idx) AS k FROM picked p
),
leased AS (
  UPDATE jobs SET ${leaseTo('p.node')}
    FROM numbered n JOIN plain p ON p.k = n.k
   WHERE jobs.id = n.id
  RETURNING jobs.*
),
started AS (
  UPDATE sweeps SET status = 'running'
    FROM (SELECT q.id FROM sweeps q
           WHERE q.status = 'queued' AND q.id IN (SELECT n.sweep_id FROM numbered n JOIN plain p ON p.k = n.k)
           ORDER BY q.id FOR NO KEY UPDATE) l
   WHERE sweeps.id = l.id
)
SELECT l.*, NULL::text AS alone FROM leased l
UNION ALL
SELECT (NULL::jobs).*, a.node FROM alone a`;

/**
 * Rule 4's values ($7–$12) from what the node holds: model-placement.ts's
 * `modelParams` (the SQLite scheduler's, so both count holders and rates
 * alike), turned from its JSON into arrays.
 */
export function pickModelValues(names: string[], models: PickModels | undefined): [string, string[], string[], number[], number, number] {
  const p = modelParams(names, models?.state, models?.holderCounts ?? new Map<string, number>());
  const holders = Object.entries(JSON.parse(p.holders) as Record<string, number>);
  return [p.loaded, JSON.parse(p.cached) as string[], holders.map(([h]) => h.slice(1)), holders.map(([, n]) => n), p.rate, p.jobMs];
}

/** Scheduler.straggler's rule: a slow leased job of a sweep with nothing queued, for an idle node that fits it. $1 node, $2 backends, $3 VRAM, $4 started before. */
export const STRAGGLER_SQL = `
SELECT j.id
  FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
 WHERE j.state = 'leased' AND j.copy_node_id IS NULL AND j.node_id <> $1
   AND s.status = 'running'
   AND s.backend = ANY($2::text[])
   AND j.min_vram_mb <= $3
   AND j.started_at <= $4
   AND NOT EXISTS (SELECT 1 FROM jobs q WHERE q.state = 'queued' AND q.sweep_id = j.sweep_id)
   AND NOT EXISTS (SELECT 1 FROM job_exclusions x WHERE x.job_id = j.id AND x.node_id = $1)
   AND NOT EXISTS (SELECT 1 FROM sweep_blocklist b WHERE b.sweep_id = s.id AND b.node_id = $1 AND b.blocked = 1)
 ORDER BY j.started_at, j.id
 LIMIT 1`;

/** The node-free part of STRAGGLER_SQL (scheduler.ts's anyStraggler): whether any job could be copied now. */
export const ANY_STRAGGLER_SQL = `
SELECT 1
  FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
 WHERE j.state = 'leased' AND j.copy_node_id IS NULL
   AND s.status = 'running'
   AND j.started_at <= $1
   AND NOT EXISTS (SELECT 1 FROM jobs q WHERE q.state = 'queued' AND q.sweep_id = j.sweep_id)
 LIMIT 1`;

/**
 * Which job a node gets next. The rule, in order:
 *   1. only active sweeps the node is not blocklisted for;
 *   2. the highest sweep priority, as far as it may reach across people: an
 *      admin's (and the farm token's) counts in full; a user's above 0
 *      counts as 0 here (else any user could take the farm with priority 1),
 *      below 0 in full (their work yields to everyone's);
 *   3. among equal priorities, fair share between people first: the user
 *      whose running jobs, one more counted, are the smallest part of their
 *      weight (two users of weight 1 get half the farm each, whatever their
 *      sweep counts); then that user's sweep with the highest priority;
 *   4. then by the sweep's model on this node: loaded, then held (cached or
 *      downloading; or a name-only model it lists), then to be fetched — so
 *      a node keeps rendering its loaded model's jobs before switching
 *      (batching by model, within the user's share) — and a fetch that
 *      other nodes holding the model would outrun is not started
 *      (model-placement.ts); then the sweep with the fewest jobs running
 *      now (a user's sweeps on the same model progress together); then the
 *      oldest;
 *   5. within the sweep, the first queued job, past its retry backoff, that
 *      the node can run (backend, VRAM floor) and has not failed before.
 * Straggler copies are a separate, last-resort choice for idle nodes.
 * What "can run" means is placement.ts's rule (`FITS_SQL`).
 *
 * The cost does not grow with the queue: running counts are the sweeps'
 * counters (`sweep_counts`) and the users' (`users.running`, by trigger), a sweep whose smallest queued VRAM floor is
 * above the node's card is skipped by one index probe (jobs_vram) instead of
 * a walk through its jobs, and exclusions are rows of `job_exclusions`.
 */
import type { DB } from './db.js';
import { FITS_SQL, fitsParams, type NodeCaps } from './placement.js';
import { MODEL_SQL, modelParams } from './model-placement.js';
import type { NodeModels } from './node-models.js';

export type { NodeCaps } from './placement.js';

interface SweepCandidate {
  id: string;
  priority: number;
  running: number;
  model_affinity: number;
  created_at: number;
}

export class Scheduler {
  private readonly sweepsStmt;
  private readonly jobStmt;
  private readonly stragglerStmt;
  private readonly anyStragglerStmt;

  constructor(
    private readonly db: DB,
    /** What nodes hold of registry models (rule 4); absent: no node holds any. */
    private readonly models?: Pick<NodeModels, 'of' | 'holderCounts'>,
  ) {
    this.sweepsStmt = db.prepare(`
      SELECT s.id, s.priority, s.created_at,
             COALESCE((SELECT c.n FROM sweep_counts c WHERE c.sweep_id = s.id AND c.state = 'leased'), 0) AS running,
             ${MODEL_SQL.affinity('s')} AS model_affinity
        FROM sweeps s LEFT JOIN users u ON u.name = s.owner
       WHERE s.status IN ('queued', 'running')
         AND ${FITS_SQL.backend('s.backend')}
         AND NOT EXISTS (SELECT 1 FROM sweep_blocklist b WHERE b.sweep_id = s.id AND b.node_id = @node AND b.blocked = 1)
         AND ${MODEL_SQL.worthFetching('s')}
         -- Nothing queued, or nothing small enough for this card: skipped without reading its jobs (NULL when none is queued).
         AND ${FITS_SQL.vram("(SELECT MIN(q.min_vram_mb) FROM jobs q WHERE q.sweep_id = s.id AND q.state = 'queued')")}
       ORDER BY CASE WHEN COALESCE(u.admin, 0) = 1 THEN s.priority ELSE MIN(s.priority, 0) END DESC,
                (COALESCE(u.running, 0) + 1.0) / COALESCE(u.weight, 1) ASC, s.priority DESC, model_affinity DESC, running ASC, s.created_at, s.id`);
    // The first queued job in index order that fits, found without walking past jobs too
    // big for the card: the sweep's distinct VRAM floors up to the card's (a few: one per
    // size in the sweep) are hopped through jobs_vram one probe each, the first ready job
    // of each floor is one more probe, and the lowest index among them is the answer.
    // (Walking jobs_dispatch in index order and skipping big jobs cost 30 ms a pick at
    // 1M queued for a card that fits only the small jobs at the end: bench/nofit-pick.ts.)
    this.jobStmt = db.prepare(`
      WITH RECURSIVE floors(v) AS (
        SELECT MIN(q.min_vram_mb) FROM jobs q WHERE q.sweep_id = @sweep AND q.state = 'queued'
        UNION ALL
        SELECT (SELECT MIN(q.min_vram_mb) FROM jobs q WHERE q.sweep_id = @sweep AND q.state = 'queued' AND q.min_vram_mb > f.v)
          FROM floors f WHERE f.v IS NOT NULL AND ${FITS_SQL.vram('f.v')}
      ),
      firsts(idx) AS (
        SELECT (SELECT q.idx
                  FROM jobs q INDEXED BY jobs_vram
                 WHERE q.sweep_id = @sweep AND q.state = 'queued' AND q.min_vram_mb = f.v
                   AND q.not_before <= @now
                   AND NOT EXISTS (SELECT 1 FROM job_exclusions x WHERE x.job_id = q.id AND x.node_id = @node)
                 ORDER BY q.idx
                 LIMIT 1)
          FROM floors f
         WHERE f.v IS NOT NULL AND ${FITS_SQL.vram('f.v')}
      )
      -- One lookup by (sweep_id, idx) once the lowest index is known (not a join the planner could drive from jobs).
      SELECT j.id FROM jobs j WHERE j.sweep_id = @sweep AND j.idx = (SELECT MIN(idx) FROM firsts)`);
    // Slow jobs of sweeps with nothing left in the queue, rendering elsewhere for longer than `@since`.
    this.stragglerStmt = db.prepare(`
      SELECT j.id
        FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
       WHERE j.state = 'leased' AND j.copy_node_id IS NULL AND j.node_id != @node
         AND s.status = 'running'
         AND ${FITS_SQL.backend('s.backend')}
         AND ${FITS_SQL.vram('j.min_vram_mb')}
         AND j.started_at <= @since
         AND NOT EXISTS (SELECT 1 FROM jobs q WHERE q.state = 'queued' AND q.sweep_id = j.sweep_id)
         AND NOT EXISTS (SELECT 1 FROM job_exclusions x WHERE x.job_id = j.id AND x.node_id = @node)
         AND NOT EXISTS (SELECT 1 FROM sweep_blocklist b WHERE b.sweep_id = s.id AND b.node_id = @node AND b.blocked = 1)
       ORDER BY j.started_at
       LIMIT 1`);
    // The node-free part of the straggler query: whether any job at all could be copied now.
    // A fill asks it once before its idle nodes ask theirs (1,000 idle nodes at a sweep's
    // tail each walked every leased job, every tick: bench/scale.ts).
    this.anyStragglerStmt = db.prepare(`
      SELECT 1
        FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
       WHERE j.state = 'leased' AND j.copy_node_id IS NULL
         AND s.status = 'running'
         AND j.started_at <= @since
         AND NOT EXISTS (SELECT 1 FROM jobs q WHERE q.state = 'queued' AND q.sweep_id = j.sweep_id)
       LIMIT 1`);
  }

  /**
   * The next job for this node, or undefined. The caller leases it before
   * asking again, so running counts (and with them the fair share) stay current.
   */
  pick(nodeId: string, caps: NodeCaps, now: number): string | undefined {
    if (caps.backends.length === 0) return undefined;
    const { backends, vram } = fitsParams(caps);
    const models = modelParams(caps.models, this.models?.of(nodeId), this.models?.holderCounts() ?? new Map<string, number>());
    const sweeps = this.sweepsStmt.all({ node: nodeId, backends, vram, ...models }) as SweepCandidate[];
    for (const s of sweeps) {
      const row = this.jobStmt.get({ sweep: s.id, now, vram, node: nodeId }) as { id: string } | undefined;
      if (row) return row.id;
    }
    return undefined;
  }

  /** Whether any running job, on any node, started before `startedBefore` in a sweep with nothing queued: none means no node gets a copy. */
  anyStraggler(startedBefore: number): boolean {
    return this.anyStragglerStmt.get({ since: startedBefore }) !== undefined;
  }

  /** A job worth duplicating onto this idle node, if any has run longer than `sinceMs` ago. */
  straggler(nodeId: string, caps: NodeCaps, startedBefore: number): string | undefined {
    const row = this.stragglerStmt.get({ node: nodeId, ...fitsParams(caps), since: startedBefore }) as { id: string } | undefined;
    return row?.id;
  }
}

/**
 * Which queued jobs go to a node next: the whole decision is one query.
 * Highest sweep priority first, then oldest sweep, then job order; only jobs
 * of active sweeps, past their retry backoff, that the node's backends can run.
 */
import type { DB } from './db.js';

export interface NodeCaps {
  backends: string[];
  models: string[];
  vramMb: number;
}

export function pickJobs(db: DB, caps: NodeCaps, limit: number, now: number): string[] {
  if (limit <= 0 || caps.backends.length === 0) return [];
  const rows = db
    .prepare(
      `SELECT j.id
         FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
        WHERE j.state = 'queued'
          AND s.status IN ('queued', 'running')
          AND j.not_before <= ?
          AND j.backend IN (SELECT value FROM json_each(?))
        ORDER BY s.priority DESC, s.created_at, s.id, j.idx
        LIMIT ?`,
    )
    .all(now, JSON.stringify(caps.backends), limit) as { id: string }[];
  return rows.map((r) => r.id);
}

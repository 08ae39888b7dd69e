/**
 * Scheduling with registry models (the scheduler's rule 4; docs/design.md
 * "Scheduling"). For a node asking for work, a sweep's model is
 *   2 — loaded on the node now (batching by model: it keeps rendering it),
 *   1 — held: in its cache or downloading there (or, for a model known to
 *       nodes by name only, listed in its capabilities),
 *   0 — to be fetched from the bucket first.
 * A fetch is not started when it is not worth it: other connected nodes
 * hold the model and would render the sweep's queued jobs before this node
 * finished the download (fetch time = model size ÷ the node's measured
 * download rate, DEFAULT_FETCH_BYTES_PER_S while unmeasured; their time =
 * queued jobs × the sweep's recent mean render time, DEFAULT_JOB_MS before
 * any finished, ÷ the holders). `worthFetching` is the rule over plain data;
 * the scheduler's SQL uses MODEL_SQL, the same rule (model-placement.test.ts
 * keeps them equal).
 */
import type { NodeModelState } from './node-models.js';

/** Assumed download rate of a node that has not downloaded anything yet: 50 MiB/s (a gigabit LAN, shared). */
export const DEFAULT_FETCH_BYTES_PER_S = 50 * 1024 * 1024;
/** Assumed render time of a sweep's job before any has finished. */
export const DEFAULT_JOB_MS = 5_000;

export interface FetchCase {
  /** The model's size and this node's download rate (0: unmeasured). */
  bytes: number;
  bytesPerS: number;
  /** The sweep's queued jobs and its recent mean render time (undefined: none finished yet). */
  queued: number;
  jobMs: number | undefined;
  /** Other connected nodes holding the model. */
  holders: number;
}

export function fetchMs(bytes: number, bytesPerS: number): number {
  return (bytes * 1000) / (bytesPerS > 0 ? bytesPerS : DEFAULT_FETCH_BYTES_PER_S);
}

/** Whether a node that lacks the model should download it for this sweep. */
export function worthFetching(c: FetchCase): boolean {
  if (c.holders === 0) return true;
  return (c.queued * (c.jobMs ?? DEFAULT_JOB_MS)) / c.holders >= fetchMs(c.bytes, c.bytesPerS);
}

/** Whether the model counts as held: loaded, cached, or on its way. */
const HELD = (s: string) => `(${s}.model_hash = @loaded OR ${s}.model_hash IN (SELECT value FROM json_each(@cached)))`;

/** `s`: the sweeps table's alias. The statement binds `modelParams(...)`. */
export const MODEL_SQL = {
  affinity: (s: string) => `CASE
      WHEN ${s}.model_hash = '' THEN ${s}.model IN (SELECT value FROM json_each(@models))
      WHEN ${s}.model_hash = @loaded THEN 2
      WHEN ${HELD(s)} THEN 1
      ELSE 0 END`,
  worthFetching: (s: string) => `(${s}.model_hash = '' OR ${HELD(s)}
      OR COALESCE(json_extract(@holders, '$.h' || ${s}.model_hash), 0) = 0
      OR COALESCE((SELECT c.n FROM sweep_counts c WHERE c.sweep_id = ${s}.id AND c.state = 'queued'), 0)
         * COALESCE((SELECT AVG(f.render_ms) FROM (SELECT r.render_ms FROM jobs r WHERE r.sweep_id = ${s}.id AND r.state IN ('done', 'skipped')
                       AND r.render_ms > 0 ORDER BY r.finished_at DESC LIMIT 20) f), @jobMs)
         / json_extract(@holders, '$.h' || ${s}.model_hash)
         >= ${s}.model_bytes * 1000.0 / @rate)`,
};

export interface ModelParams {
  models: string;
  loaded: string;
  cached: string;
  holders: string;
  rate: number;
  jobMs: number;
}

/**
 * The node's side of rule 4: `names` its capabilities' models, `state` what
 * it reported of its cache, `holderCounts` how many connected nodes hold each
 * hash (this node among them, subtracted here).
 */
export function modelParams(names: string[], state: NodeModelState | undefined, holderCounts: ReadonlyMap<string, number>): ModelParams {
  const own = new Set(state ? [...state.cached, ...(state.loaded ? [state.loaded] : [])] : []);
  const holders: Record<string, number> = {};
  for (const [hash, n] of holderCounts) holders[`h${hash}`] = n - (own.has(hash) ? 1 : 0);
  return {
    models: JSON.stringify(names),
    loaded: state?.loaded ?? '',
    cached: JSON.stringify(state ? [...state.cached, ...state.downloads.map((d) => d.hash)] : []),
    holders: JSON.stringify(holders),
    rate: state && state.bytesPerS > 0 ? state.bytesPerS : DEFAULT_FETCH_BYTES_PER_S,
    jobMs: DEFAULT_JOB_MS,
  };
}

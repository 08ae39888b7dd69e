/**
 * What the renders cost (issue 16): each render's GPU time and the energy
 * its node measured, as reported in JobCompleted.cost. One row per job and
 * node: a report sent again (a reconnecting node re-sends its recent
 * completions) counts once, a job rendered by two nodes counts twice (both
 * drew power). Sums per sweep and node and per node are kept by a trigger
 * (migration "what a night cost"), so reading them never scans jobs.
 *
 * Nodes are not trusted: GPU time is capped at MAX_GPU_MS, and energy
 * beyond MAX_WATTS over the GPU time (or not a finite, non-negative number)
 * is recorded as not measured.
 *
 * Kept apart from the Store's class chain (as store/shares.ts is): costs
 * raise no event, so they need none of its commit machinery; they are
 * written inside the caller's transaction (the hub records a result's cost
 * in the transaction that records the result).
 */
import type { Statement } from 'better-sqlite3';
import type { JobCompleted } from '@nightshift/proto';
import type { DB } from '../db.js';
import { statementCache } from './statements.js';

/** No render draws more than this (a node with eight 700 W cards is 5.6 kW): above it, a report's energy is not believed. */
export const MAX_WATTS = 20_000;
/** One render's GPU time is capped at a day (no lease outlives a silent node by that much). */
export const MAX_GPU_MS = 24 * 3_600_000;
const MAX_LABEL = 128;

/**
 * A name a node reports (its GPU, driver, the model it ran), as stored: at
 * most 128 characters, without control characters (PostgreSQL's text refuses
 * NUL, and none belongs in a name).
 */
export function cleanLabel(s: string | undefined): string {
  // By code point, so a cut never splits a character in two.
  return Array.from((s ?? '').replace(/\p{Cc}/gu, '')).slice(0, MAX_LABEL).join('');
}

export interface CostRecord {
  gpuMs: number;
  /** null: not measured. */
  energyJoules: number | null;
  gpuName: string;
  driverVersion: string;
}

/** Per sweep and node, or per node (sweep_id absent). */
export interface CostSumRow {
  node_id: string;
  /** The node's name, when it is known. */
  name: string | null;
  renders: number;
  gpu_ms: number;
  measured_renders: number;
  energy_joules: number;
  gpu_name: string;
  driver_version: string;
}

export type Recorded = { recorded: true; implausible?: string } | { recorded: false };

/**
 * A report's cost as it will be recorded: undefined for a skipped job
 * (nothing was rendered). A node without a cost message (an older node)
 * gives its renderMs as GPU time and no energy.
 */
export function costOfReport(v: Pick<JobCompleted, 'skipped' | 'renderMs' | 'cost'>): (CostRecord & { implausible?: string }) | undefined {
  if (v.skipped) return undefined;
  const c = v.cost;
  const gpuMs = Math.max(0, Math.min(c ? c.gpuMs : v.renderMs, MAX_GPU_MS));
  const base = { gpuMs, gpuName: cleanLabel(c?.gpuName), driverVersion: cleanLabel(c?.driverVersion) };
  if (!c?.energyMeasured) return { ...base, energyJoules: null };
  const j = c.energyJoules;
  if (!Number.isFinite(j) || j < 0 || j > (MAX_WATTS * gpuMs) / 1000) {
    return { ...base, energyJoules: null, implausible: `${j} J over ${gpuMs} ms is not a plausible draw` };
  }
  return { ...base, energyJoules: j };
}

export class CostStore {
  private readonly q: (sql: string) => Statement;

  constructor(
    private readonly db: DB,
    private readonly now: () => number = Date.now,
  ) {
    this.q = statementCache(db);
  }

  /** Records what a reported render cost, once per job and node (call inside the transaction that records the result). */
  record(jobId: string, nodeId: string, v: Pick<JobCompleted, 'skipped' | 'renderMs' | 'cost'>): Recorded {
    const cost = costOfReport(v);
    if (!cost) return { recorded: false };
    const job = this.q('SELECT sweep_id FROM jobs WHERE id = ?').get(jobId) as { sweep_id: string } | undefined;
    if (!job) return { recorded: false };
    const inserted = this.q(
      `INSERT OR IGNORE INTO job_costs (job_id, node_id, sweep_id, gpu_ms, energy_joules, gpu_name, driver_version, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(jobId, nodeId, job.sweep_id, cost.gpuMs, cost.energyJoules, cost.gpuName, cost.driverVersion, this.now()).changes;
    if (!inserted) return { recorded: false };
    return cost.implausible ? { recorded: true, implausible: cost.implausible } : { recorded: true };
  }

  /** A job's recorded costs, one per node that reported it. */
  jobCosts(jobId: string): { node_id: string; gpu_ms: number; energy_joules: number | null; gpu_name: string; driver_version: string }[] {
    return this.q('SELECT node_id, gpu_ms, energy_joules, gpu_name, driver_version FROM job_costs WHERE job_id = ? ORDER BY node_id').all(jobId) as {
      node_id: string;
      gpu_ms: number;
      energy_joules: number | null;
      gpu_name: string;
      driver_version: string;
    }[];
  }

  /** A sweep's sums, one row per node that rendered for it. */
  sweepSums(sweepId: string): CostSumRow[] {
    return this.q(
      `SELECT c.node_id, n.name, c.renders, c.gpu_ms, c.measured_renders, c.energy_joules, c.gpu_name, c.driver_version
         FROM sweep_costs c LEFT JOIN nodes n ON n.id = c.node_id WHERE c.sweep_id = ? ORDER BY c.node_id`,
    ).all(sweepId) as CostSumRow[];
  }

  /** Every node's sums over all sweeps (/metrics). */
  nodeSums(): Omit<CostSumRow, 'name' | 'gpu_name' | 'driver_version'>[] {
    return this.q('SELECT node_id, renders, gpu_ms, measured_renders, energy_joules FROM node_costs ORDER BY node_id').all() as Omit<CostSumRow, 'name' | 'gpu_name' | 'driver_version'>[];
  }
}

const perDb = new WeakMap<DB, CostStore>();

/** The CostStore of a database connection (one per connection, so its statements are prepared once). */
export function costStoreOf(db: DB): CostStore {
  let s = perDb.get(db);
  if (!s) perDb.set(db, (s = new CostStore(db)));
  return s;
}

/**
 * What the renders cost, on PostgreSQL (store/costs.ts's rules: the report
 * judged by its `costOfReport`, one row per job and node, sums per sweep and
 * node and per node kept by a trigger in the row's own transaction).
 */
import type pg from 'pg';
import type { JobCompleted } from '@nightshift/proto';
import { costOfReport } from '../store/costs.js';
import type { CostEngine, CostSumRow, JobCostRow, NodeCostSumRow, Recorded } from './engine.js';

export class PgCosts implements CostEngine {
  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  async record(jobId: string, nodeId: string, v: Pick<JobCompleted, 'skipped' | 'renderMs' | 'cost'>): Promise<Recorded> {
    const cost = costOfReport(v);
    if (!cost) return { recorded: false };
    // One statement: no row for an unknown job, none again for a report sent twice.
    const { rowCount } = await this.pool.query(
      `INSERT INTO job_costs (job_id, node_id, sweep_id, gpu_ms, energy_joules, gpu_name, driver_version, at)
       SELECT j.id, $2, j.sweep_id, $3, $4, $5, $6, $7 FROM jobs j WHERE j.id = $1
       ON CONFLICT (job_id, node_id) DO NOTHING`,
      [jobId, nodeId, cost.gpuMs, cost.energyJoules, cost.gpuName, cost.driverVersion, this.now()],
    );
    if (!rowCount) return { recorded: false };
    return cost.implausible ? { recorded: true, implausible: cost.implausible } : { recorded: true };
  }

  async jobCosts(jobId: string): Promise<JobCostRow[]> {
    return (await this.pool.query<JobCostRow>('SELECT node_id, gpu_ms, energy_joules, gpu_name, driver_version FROM job_costs WHERE job_id = $1 ORDER BY node_id', [jobId])).rows;
  }

  async sweepSums(sweepId: string): Promise<CostSumRow[]> {
    return (
      await this.pool.query<CostSumRow>(
        `SELECT c.node_id, n.name, c.renders, c.gpu_ms, c.measured_renders, c.energy_joules, c.gpu_name, c.driver_version
           FROM sweep_costs c LEFT JOIN nodes n ON n.id = c.node_id WHERE c.sweep_id = $1 ORDER BY c.node_id`,
        [sweepId],
      )
    ).rows;
  }

  async nodeSums(): Promise<NodeCostSumRow[]> {
    return (await this.pool.query<NodeCostSumRow>('SELECT node_id, renders, gpu_ms, measured_renders, energy_joules FROM node_costs ORDER BY node_id')).rows;
  }
}

/**
 * What the renders cost, on PostgreSQL (store/costs.ts's rules: the report
 * judged by its `costOfReport`, one row per job and node, sums per sweep and
 * node and per node kept by a trigger in the row's own transaction).
 */
import type pg from 'pg';
import type { JobCompleted } from '@nightshift/proto';
import { costOfReport } from '../store/costs.js';
import { notTheDatabases } from './postgres-pool.js';
import { TurnBatches } from './turn-batches.js';
import type { CostEngine, CostSumRow, JobCostRow, NodeCostSumRow, Recorded } from './engine.js';

interface CostReport {
  jobId: string;
  nodeId: string;
  v: Pick<JobCompleted, 'skipped' | 'renderMs' | 'cost'>;
}

export class PgCosts implements CostEngine {
  private readonly batches = new TurnBatches<CostReport, Recorded>((items) => this.recordAll(items), { alone: notTheDatabases });

  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  /** Batched with the other reports of its turn (turn-batches.ts). */
  record(jobId: string, nodeId: string, v: Pick<JobCompleted, 'skipped' | 'renderMs' | 'cost'>): Promise<Recorded> {
    return this.batches.add({ jobId, nodeId, v });
  }

  private async recordAll(items: readonly CostReport[]): Promise<Recorded[]> {
    const costs = items.map((i) => costOfReport(i.v));
    const rows = items.flatMap((i, n) => {
      const cost = costs[n];
      return cost ? [{ ...i, cost }] : [];
    });
    if (rows.length === 0) return items.map(() => ({ recorded: false }));
    // One statement: no row for an unknown job, none again for a report sent twice (in an earlier batch, or earlier in this one).
    const { rows: inserted } = await this.pool.query<{ job_id: string; node_id: string }>(
      `INSERT INTO job_costs (job_id, node_id, sweep_id, gpu_ms, energy_joules, gpu_name, driver_version, at)
       SELECT j.id, r.node_id, j.sweep_id, r.gpu_ms, r.energy_joules, r.gpu_name, r.driver_version, $7
         FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::text[], $6::text[]) WITH ORDINALITY AS r (job_id, node_id, gpu_ms, energy_joules, gpu_name, driver_version, n)
         JOIN jobs j ON j.id = r.job_id
        -- Its trigger updates each row's node and sweep sums: in node order, so two replicas' batches never wait on each other in a circle
        -- (arrival order within, so the first report of a job and node is the one kept).
        ORDER BY r.node_id, j.sweep_id, r.n
       ON CONFLICT (job_id, node_id) DO NOTHING
       RETURNING job_id, node_id`,
      [
        rows.map((r) => r.jobId), rows.map((r) => r.nodeId), rows.map((r) => r.cost.gpuMs), rows.map((r) => r.cost.energyJoules),
        rows.map((r) => r.cost.gpuName), rows.map((r) => r.cost.driverVersion), this.now(),
      ],
    );
    const fresh = new Set(inserted.map((r) => `${r.job_id} ${r.node_id}`));
    return items.map((i, n) => {
      const cost = costs[n];
      // The first report of a job and node in the batch takes the row; a repeat of it is not recorded.
      if (!cost || !fresh.delete(`${i.jobId} ${i.nodeId}`)) return { recorded: false };
      return cost.implausible ? { recorded: true, implausible: cost.implausible } : { recorded: true };
    });
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

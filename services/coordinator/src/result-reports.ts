/**
 * Result reports from gpu-nodes, which are not trusted. A report counts only
 * for a job the node holds (or held last) with the job's own keys
 * (store/completion.ts), and only once storage has the image. The storage
 * lookup runs beside the node's other messages, so a slow bucket never
 * holds them up; when it finds the objects, the hub is handed the report
 * back (`verified`) and records it in the node's line (`finish`), where the
 * store checks the rules again in the completion's own transaction. A refused report records
 * nothing, and the node is told to drop the job (a no-op for an honest node).
 */
import type { JobCompleted } from '@nightshift/proto';
import { withRetry, type Logger, type Storage } from '@nightshift/common';
import type { JobRow } from './store.js';
import type { CostEngine, StoreEngine } from './store-engine/engine.js';
import { ownKeys, refuseReport, type Refusal } from './store/completion.js';
import { MAX_GPU_MS, cleanLabel } from './store/costs.js';

export interface ResultReportsDeps {
  engine: Pick<StoreEngine, 'getJob' | 'completeJob'> & { costs: Pick<CostEngine, 'record'> };
  storage: Pick<Storage, 'exists'>;
  log: Logger;
  /** Storage lookups per object before the report is given up (backoff up to 5 s between them). */
  attempts: number;
  /** Aborted when the hub stops: lookups under way end. */
  signal: AbortSignal;
  /** The objects are stored: record the report (`finish`) in the node's line. */
  verified(nodeId: string, report: JobCompleted): void;
  /** Tell a node to drop a job. */
  cancel(nodeId: string, jobId: string, reason: string): void;
  completed?(renderMs: number, skipped: boolean): void;
  refused?(reason: Refusal['reason']): void;
}

export class ResultReports {
  /** Reports whose objects are being looked for (`jobId nodeId`): a repeated report waits for the first. */
  private readonly verifying = new Set<string>();

  constructor(private readonly deps: ResultReportsDeps) {}

  /**
   * A node says a job is done. Returns true while the report is being
   * verified: its job must not be requeued meanwhile. A report for a job
   * already final is recorded at once (only audited: it changes nothing).
   */
  async report(nodeId: string, v: JobCompleted): Promise<boolean> {
    const job = await this.deps.engine.getJob(v.jobId);
    const refused = refuseReport(job, nodeId, v);
    if (refused || !job) {
      if (refused) this.refuse(nodeId, v.jobId, refused);
      return false;
    }
    if (job.state === 'done' || job.state === 'skipped' || job.state === 'cancelled') {
      await this.finish(nodeId, v);
      return false;
    }
    const key = keyOf(nodeId, v.jobId);
    if (this.verifying.has(key)) return true;
    this.verifying.add(key);
    void this.stored(job).then(
      (found) => {
        if (found) return this.deps.verified(nodeId, v);
        this.verifying.delete(key);
        this.refuse(nodeId, v.jobId, { reason: 'not stored', detail: `${ownKeys(job).imageKey} is not in storage` });
      },
      (err: unknown) => {
        this.verifying.delete(key);
        // The job keeps its lease: if the node does not report again, the lease runs out and the next node finds the image.
        if (!this.deps.signal.aborted) this.deps.log.warn({ node: nodeId, job: v.jobId, err: String(err) }, 'result not recorded: storage did not answer');
      },
    );
    return true;
  }

  /**
   * Records a verified (or already final) report; true when the job became
   * done with it. Throws when the store does (the caller may try again: a
   * completion recorded twice counts once).
   */
  async finish(nodeId: string, v: JobCompleted): Promise<boolean> {
    const outcome = await this.deps.engine.completeJob(v.jobId, nodeId, {
      imageKey: v.imageKey, thumbKey: v.thumbKey, renderMs: Math.min(v.renderMs, MAX_GPU_MS), skipped: v.skipped, model: cleanLabel(v.model) || undefined,
    });
    this.forget(nodeId, v.jobId);
    if (outcome.refused) this.refuse(nodeId, v.jobId, outcome.refused);
    // What the render cost (store/costs.ts); an audited report counts too: its node drew the power. Recorded once per job and node, so a retry is safe.
    else await this.recordCost(nodeId, v).catch((err: unknown) => this.deps.log.warn({ node: nodeId, job: v.jobId, err: String(err) }, 'render cost not recorded'));
    for (const other of outcome.cancelOn) this.deps.cancel(other, v.jobId, 'another node finished this job first');
    if (!outcome.accepted) return false;
    this.deps.completed?.(Math.min(v.renderMs, MAX_GPU_MS), v.skipped);
    return true;
  }

  private async recordCost(nodeId: string, v: JobCompleted): Promise<void> {
    const r = await this.deps.engine.costs.record(v.jobId, nodeId, v);
    if (r.recorded && r.implausible) this.deps.log.warn({ node: nodeId, job: v.jobId, why: r.implausible }, 'reported energy not believed: recorded as not measured');
  }

  /** A verified report that could not be recorded: a later report of it is looked at afresh. */
  forget(nodeId: string, jobId: string): void {
    this.verifying.delete(keyOf(nodeId, jobId));
  }

  /**
   * Whether the job's image is in storage (asking again while storage is
   * away). One lookup: a node uploads the thumbnail first and the image last,
   * so the image's existence marks the render stored (docs/design.md
   * "Results"); looking for the thumbnail too doubled the lookups, a
   * thousand a second at 1,000 nodes.
   */
  private async stored(job: JobRow): Promise<boolean> {
    return withRetry(() => this.deps.storage.exists(ownKeys(job).imageKey), { signal: this.deps.signal, attempts: this.deps.attempts, maxMs: 5_000 });
  }

  private refuse(nodeId: string, jobId: string, refused: Refusal): void {
    this.deps.log.warn({ node: nodeId, job: jobId, reason: refused.reason, detail: refused.detail }, 'result refused');
    this.deps.refused?.(refused.reason);
    this.deps.cancel(nodeId, jobId, `result refused: ${refused.detail}`);
  }
}

const keyOf = (nodeId: string, jobId: string) => `${jobId} ${nodeId}`;

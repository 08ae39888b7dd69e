/**
 * Result reports recorded on PostgreSQL a turn's worth at a time
 * (turn-batches.ts). At 1,000 nodes a report one at a time cost six round
 * trips (BEGIN, lock, write, settle check, COMMIT, the check after commit)
 * and a run of each statement trigger on jobs; a batch pays those once.
 *
 * In one transaction, the batch's node rows and then its job rows are locked
 * in id order (the order marking a node down, requeues, lease renewals and
 * heartbeats take them too: postgres-helpers.ts's releaseNodeIn,
 * postgres.ts, postgres-heartbeats.ts), then each report is judged in arrival
 * order against the rows as the reports before it left them, exactly as if
 * they had come one by one: a straggler copy's report after its original's
 * is audited, not accepted. The writes (audit rows, jobs, nodes' counts,
 * announcements) are one statement; then the sweeps left with nothing to run
 * are settled, before and after the commit (postgres-helpers.ts's
 * settleAfterCommit says why both).
 *
 * A batch that fails for a reason other than the database's (a value that
 * cannot be stored, say) is recorded again a report at a time, so a bad
 * report fails alone.
 */
import type pg from 'pg';
import { ownKeys, refuseReport } from '../store/completion.js';
import { imageEvent, type OutboxEvent } from '../store/events.js';
import type { CompleteOutcome, JobRow } from '../store/rows.js';
import type { CompletionReport } from './engine.js';
import { announcedBefore, openJobsOf, settleAfterCommit, settleSweep, type Q } from './postgres-helpers.js';
import { inTransaction, notTheDatabases } from './postgres-pool.js';
import { writeDeliveries } from './postgres-webhooks.js';
import { TurnBatches } from './turn-batches.js';

export interface Completion {
  jobId: string;
  nodeId: string;
  report: CompletionReport;
}

/** The batch's writes in one round trip; every array is in the batch's order. */
const WRITE_SQL = `
WITH audit AS (
  INSERT INTO results (job_id, node_id, skipped, accepted, copy, at)
  SELECT a.job_id, a.node_id, a.skipped, a.accepted, a.copy, $20
    FROM unnest($10::text[], $11::text[], $12::smallint[], $13::smallint[], $14::smallint[]) WITH ORDINALITY AS a (job_id, node_id, skipped, accepted, copy, n)
   ORDER BY a.n
),
counted AS (
  UPDATE nodes SET jobs_done = jobs_done + c.n FROM unnest($15::text[], $16::int[]) AS c (id, n) WHERE nodes.id = c.id
),
announced AS (
  INSERT INTO outbox (subject, msg_id, payload, created_at)
  SELECT o.subject, o.msg_id, o.payload, $20 FROM unnest($17::text[], $18::text[], $19::text[]) WITH ORDINALITY AS o (subject, msg_id, payload, n) ORDER BY o.n
)
UPDATE jobs SET state = v.state, node_id = v.node_id, prev_node_id = v.prev_node_id, image_key = v.image_key, thumb_key = v.thumb_key,
       render_ms = v.render_ms, finished_at = $20, lease_expires_at = NULL, copy_node_id = NULL, copy_lease_expires_at = NULL, error = NULL,
       result_model = v.result_model, announced = CASE WHEN v.announce THEN 1 ELSE jobs.announced END
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[], $9::bool[])
       AS v (id, state, node_id, prev_node_id, image_key, thumb_key, render_ms, result_model, announce)
 WHERE jobs.id = v.id`;

/** Of the sweeps given, those with no job left to run. */
const SETTLED_SQL = `SELECT s.id FROM unnest($1::text[]) AS s (id) WHERE NOT EXISTS (${openJobsOf('s.id')}) ORDER BY s.id`;

/** What one batch writes, gathered report by report. */
class BatchWrites {
  readonly jobs = { id: [] as string[], state: [] as string[], node: [] as string[], prev: [] as (string | null)[], image: [] as string[], thumb: [] as string[], renderMs: [] as number[], model: [] as (string | null)[], announce: [] as boolean[] };
  readonly audit = { job: [] as string[], node: [] as string[], skipped: [] as number[], accepted: [] as number[], copy: [] as number[] };
  readonly doneByNode = new Map<string, number>();
  readonly events: OutboxEvent[] = [];
  readonly sweeps = new Set<string>();

  values(now: number): unknown[] {
    const j = this.jobs;
    const a = this.audit;
    return [
      j.id, j.state, j.node, j.prev, j.image, j.thumb, j.renderMs, j.model, j.announce,
      a.job, a.node, a.skipped, a.accepted, a.copy,
      [...this.doneByNode.keys()], [...this.doneByNode.values()],
      this.events.map((e) => e.subject), this.events.map((e) => e.msgId), this.events.map((e) => JSON.stringify(e.payload)),
      now,
    ];
  }
}

export class PgCompletions {
  private readonly batches = new TurnBatches<Completion, CompleteOutcome>((items) => this.record(items), { alone: notTheDatabases });

  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  complete(c: Completion): Promise<CompleteOutcome> {
    return this.batches.add(c);
  }

  /** Records the batch; each report's outcome, in order. */
  private async record(items: readonly Completion[]): Promise<CompleteOutcome[]> {
    const now = this.now();
    let settled: string[] = [];
    const outcomes = await inTransaction(this.pool, async (c) => {
      // Nodes, then jobs, each in id order: the order the heartbeats' statements and marking a node down take them.
      await c.query('SELECT 1 FROM nodes WHERE id = ANY($1) ORDER BY id FOR UPDATE', [[...new Set(items.map((i) => i.nodeId))]]);
      const ids = [...new Set(items.map((i) => i.jobId))];
      const rows = (await c.query<JobRow>('SELECT * FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE', [ids])).rows;
      const jobs = new Map(rows.map((r) => [r.id, r]));
      const writes = new BatchWrites();
      const out: CompleteOutcome[] = [];
      for (const item of items) out.push(await judge(c, jobs, item, writes, now));
      if (writes.audit.job.length > 0) {
        await c.query(WRITE_SQL, writes.values(now));
        // Its webhook deliveries, if any webhook could ask for it (none for images: no query).
        for (const e of writes.events) await writeDeliveries(c, e.subject, e.msgId, e.payload, now);
      }
      settled = [...writes.sweeps];
      for (const sweepId of await withNothingToRun(c, settled)) await settleSweep(c, sweepId, now);
      return out;
    });
    // Settled again once committed: another replica's last job may have committed beside ours.
    const left = await withNothingToRun(this.pool, settled).catch(() => []);
    for (const sweepId of left) await settleAfterCommit(this.pool, sweepId, now);
    return outcomes;
  }
}

/**
 * One report, as store/completion.ts rules it, against `jobs` as the batch's
 * earlier reports left them; its writes go into `w`, and its row in `jobs`
 * changes as the write will change it.
 */
async function judge(c: Q, jobs: Map<string, JobRow>, { jobId, nodeId, report: r }: Completion, w: BatchWrites, now: number): Promise<CompleteOutcome> {
  const outcome: CompleteOutcome = { accepted: false, cancelOn: [] };
  const job = jobs.get(jobId);
  const refused = refuseReport(job, nodeId, r);
  if (refused || !job) {
    if (refused) outcome.refused = refused;
    return outcome;
  }
  const isCopy = job.copy_node_id === nodeId;
  const audit = (accepted: boolean) => {
    w.audit.job.push(job.id);
    w.audit.node.push(nodeId);
    w.audit.skipped.push(r.skipped ? 1 : 0);
    w.audit.accepted.push(accepted ? 1 : 0);
    w.audit.copy.push(isCopy ? 1 : 0);
  };
  if (job.state === 'done' || job.state === 'skipped' || job.state === 'cancelled') {
    audit(false);
    return outcome;
  }
  if (job.state === 'leased') outcome.cancelOn = [job.node_id, job.copy_node_id].filter((n): n is string => !!n && n !== nodeId);
  const other = outcome.cancelOn[0] ?? job.prev_node_id;
  const own = ownKeys(job);
  // A skipped job's image may never have been announced: its renderer died between upload and report.
  const announce = !r.skipped || !(job.announced === 1 || announcedInBatch(jobs, job) || (await announcedBefore(c, job)));
  const event = announce ? imageEvent(job, nodeId, { ...r, imageKey: own.imageKey }, now) : undefined;
  audit(true);
  const state = r.skipped ? 'skipped' : 'done';
  const j = w.jobs;
  j.id.push(job.id);
  j.state.push(state);
  j.node.push(nodeId);
  j.prev.push(other);
  j.image.push(own.imageKey);
  j.thumb.push(own.thumbKey);
  j.renderMs.push(r.renderMs);
  j.model.push(r.model ?? null);
  j.announce.push(announce);
  w.doneByNode.set(nodeId, (w.doneByNode.get(nodeId) ?? 0) + 1);
  if (event) w.events.push(event);
  w.sweeps.add(job.sweep_id);
  jobs.set(job.id, {
    ...job, state, node_id: nodeId, prev_node_id: other, image_key: own.imageKey, thumb_key: own.thumbKey, render_ms: r.renderMs, finished_at: now,
    lease_expires_at: null, copy_node_id: null, copy_lease_expires_at: null, error: null, result_model: r.model ?? null, announced: announce ? 1 : job.announced,
  });
  outcome.accepted = true;
  return outcome;
}

/** Whether a report earlier in the batch announced this job's render (the database cannot see it yet). */
function announcedInBatch(jobs: Map<string, JobRow>, job: JobRow): boolean {
  for (const other of jobs.values()) {
    if (other.id !== job.id && other.render_key === job.render_key && other.kind === job.kind && other.announced === 1 && (other.state === 'done' || other.state === 'skipped')) return true;
  }
  return false;
}

async function withNothingToRun(c: Q, sweepIds: string[]): Promise<string[]> {
  if (sweepIds.length === 0) return [];
  return (await c.query<{ id: string }>(SETTLED_SQL, [sweepIds])).rows.map((r) => r.id);
}

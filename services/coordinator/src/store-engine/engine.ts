/**
 * The Store engine: one async interface for the core job lifecycle, with two
 * implementations, SQLite (sqlite.ts, an adapter over the coordinator's
 * synchronous Store) and PostgreSQL (postgres.ts, for several coordinator
 * replicas on one database). One conformance suite (conformance.ts) runs the
 * same test bodies against both, so a caller switched to this interface
 * behaves the same on either (docs/design.md §4 "Store engines").
 *
 * Rows keep the SQLite shapes (rows.ts) on both engines: times are ms since
 * the epoch from the engine's `now`, JSON columns are text.
 */
import type { Failure, FailingNode, NodeCaps } from '../placement.js';
import type { ReportedKeys } from '../store/completion.js';
import type { CompleteOutcome, JobRow, NewJob, SweepCounts, SweepRow } from '../store/rows.js';

export type { CompleteOutcome, JobRow, NewJob, SweepCounts, SweepRow } from '../store/rows.js';

export interface NewSweep {
  name: string;
  spec: unknown;
  priority: number;
  backend: string;
  model: string;
  kind?: 'render' | 'upscale';
}

export type CompletionReport = ReportedKeys & { renderMs: number; skipped: boolean; model?: string | undefined };

/** An outbox row claimed for publishing: nobody else gets it until the claim lapses or it is marked published. */
export interface ClaimedEvent {
  id: number;
  subject: string;
  msg_id: string;
  payload: string;
}

/** A periodic duty held by this engine's connection; lost when that connection dies. */
export interface Leadership {
  readonly duty: string;
  /** False once released or once the connection that held it is gone. */
  held(): boolean;
  /** Settles when the leadership ends (released, or the connection died). */
  readonly lost: Promise<void>;
  release(): Promise<void>;
}

export interface StoreEngine {
  readonly kind: 'sqlite' | 'postgres';

  /** Stores a sweep and its jobs atomically (jobs in batches), its counters and its sweep.created event. */
  createSweep(sweep: NewSweep, jobs: NewJob[], id?: string): Promise<SweepRow>;
  getSweep(id: string): Promise<SweepRow | undefined>;
  getJob(id: string): Promise<JobRow | undefined>;
  /** A sweep's jobs by state from its counters (leased counts as running); never counts jobs. */
  counts(sweepId: string): Promise<SweepCounts>;
  /** The nodes a job never goes to again. */
  exclusions(jobId: string): Promise<string[]>;

  /**
   * Picks the next job for this node by the scheduler's rule (scheduler.ts)
   * and leases it, atomically: concurrent callers never get the same job.
   */
  leaseNext(nodeId: string, caps: NodeCaps, leaseMs: number): Promise<JobRow | undefined>;
  /** Extends the leases of jobs this node says it still holds. */
  renewLeases(nodeId: string, jobIds: string[], leaseMs: number): Promise<void>;
  /** Requeues leased jobs whose lease ran out; returns them as they were. */
  expireLeases(): Promise<JobRow[]>;
  /** Records a finished render (first report wins; its image announced once; the sweep settled when it was the last). */
  completeJob(jobId: string, nodeId: string, report: CompletionReport): Promise<CompleteOutcome>;
  /** Records a failure as placement.ts's decideFailure rules it (exclusion, VRAM floor, backoff, blocklist). */
  failJob(jobId: string, node: FailingNode, failure: Failure): Promise<{ job: JobRow; blocklisted: boolean } | undefined>;
  /** Returns leased jobs to the queue with a reason. */
  requeue(jobIds: string[], reason: string): Promise<void>;

  /** Appends an event to the outbox (state changes append theirs in their own transaction). */
  appendEvent(subject: string, msgId: string, payload: unknown): Promise<void>;
  /** Claims up to `limit` unpublished events, oldest first, for `claimMs`; a concurrent claimer gets others. */
  claimEvents(limit: number, claimMs: number): Promise<ClaimedEvent[]>;
  markPublished(ids: number[]): Promise<void>;

  /** Takes a periodic duty (node timeouts, outbox publishing, pruning) unless another holder has it. */
  lead(duty: string): Promise<Leadership | undefined>;

  /** Releases this engine's connections (and with them its leaderships). */
  close(): Promise<void>;
}

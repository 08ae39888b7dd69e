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
import type { JobCompleted } from '@nightshift/proto';
import type { Failure, FailingNode, NodeCaps } from '../placement.js';
import type { CostStore, CostSumRow, Recorded } from '../store/costs.js';
import type { ShareRow } from '../store/shares.js';
import type { NodeModelState } from '../node-models.js';
import type { ReportedKeys } from '../store/completion.js';
import type { CompleteOutcome, JobRow, NewJob, SweepCounts, SweepRow } from '../store/rows.js';
import type { NewUser, UserRow } from '../store/users.js';
import type { SweepToStore } from '../store/sweeps.js';
import type { ListingEngine, NodeEngine, PeopleEngine, RetentionEngine, WebhookEngine } from './engine-faces.js';
import type { GalleryEngine } from './gallery-face.js';

export type { CompleteOutcome, JobRow, NewJob, SweepCounts, SweepRow } from '../store/rows.js';
export type { NewUser, UserRow } from '../store/users.js';
export type { CostSumRow, Recorded } from '../store/costs.js';
export type { ShareRow } from '../store/shares.js';
export type { Async, ListingEngine, NodeEngine, PeopleEngine, RetentionEngine, WebhookEngine } from './engine-faces.js';
export type { FarmCounts, GalleryEngine } from './gallery-face.js';

export type JobCostRow = ReturnType<CostStore['jobCosts']>[number];
export type NodeCostSumRow = ReturnType<CostStore['nodeSums']>[number];

/** What the renders cost (store/costs.ts): per job and node, summed per sweep and node and per node by the database. */
export interface CostEngine {
  /**
   * Records what a reported render cost, once per job and node (a report
   * sent again counts once, so recording it apart from the result's own
   * transaction is safe: a node re-sends its recent completions after a crash).
   */
  record(jobId: string, nodeId: string, report: Pick<JobCompleted, 'skipped' | 'renderMs' | 'cost'>): Promise<Recorded>;
  jobCosts(jobId: string): Promise<JobCostRow[]>;
  /** A sweep's sums, one row per node that rendered for it. */
  sweepSums(sweepId: string): Promise<CostSumRow[]>;
  nodeSums(): Promise<NodeCostSumRow[]>;
}

/** Share links (store/shares.ts): frozen image lists shown to whoever holds a signed token until they expire or are deleted. */
export interface ShareEngine {
  /** `maxLive`: refused (CapReached) when the owner has that many live links, counted in the insert's own transaction. */
  create(share: { title: string; renderKeys: readonly string[]; expiresAt: number; owner?: string; maxLive?: number }): Promise<ShareRow>;
  /** A share that exists and has not expired. */
  live(id: string): Promise<ShareRow | undefined>;
  get(id: string): Promise<ShareRow | undefined>;
  /** `owner`'s shares ('local' when absent), newest first. */
  list(owner?: string): Promise<ShareRow[]>;
  listAll(): Promise<ShareRow[]>;
  renderKeys(id: string): Promise<string[]>;
  holds(id: string, renderKey: string): Promise<boolean>;
  delete(id: string, owner?: string): Promise<boolean>;
  /** Drops shares expired before `before` (now when absent); how many. */
  pruneExpired(before?: number): Promise<number>;
}

/**
 * Which registry models each node holds (loaded or cached hashes, from its
 * ModelCacheState), farm-wide: on PostgreSQL a table written by the replica
 * the node is connected to, so every replica's pick sees every node's
 * holdings; on SQLite the one process's memory (NodeModels keeps it there too).
 */
export interface ModelHolderEngine {
  /** What a node holds now (at most MAX_REPORTED_HASHES); empty forgets it. Call it when the set changes, not on every heartbeat. */
  setHeld(nodeId: string, hashes: readonly string[]): Promise<void>;
  /** How many online nodes hold each hash (a node that went offline keeps its report but is not counted): PickModels.holderCounts. */
  holderCounts(): Promise<Map<string, number>>;
}

/** A sweep to store (store/sweeps.ts SweepToStore), with what only the engines read. */
export interface NewSweep extends SweepToStore {
  /**
   * How many jobs `jobs` will make, when the expansion counted them first:
   * a big sweep is then stored in parts (sweep-parts.ts), and nodes start on
   * the first while the rest are made.
   */
  expectedJobs?: number;
  /**
   * Hears that a part of a sweep stored in parts committed: its jobs can be
   * dispatched now. The next part waits for the first part's promise (the
   * nodes' first fills), so storing does not slow the sweep's first leases.
   */
  partStored?: () => void | Promise<void>;
}

export { CapReached, QuotaRaced, type SweepQuota } from '../store/limits.js';

/**
 * What the asking node holds of registry models and how many connected nodes
 * hold each hash (model-placement.ts's `modelParams` inputs): the pick prefers
 * a sweep whose model is loaded, then held, then one worth fetching.
 */
export interface PickModels {
  state: NodeModelState | undefined;
  holderCounts: ReadonlyMap<string, number>;
}

/** What a committed change made worth looking at again: queued jobs (new or returned) and unpublished outbox rows. */
export interface Wake {
  jobs: boolean;
  outbox: boolean;
}

export type CompletionReport = ReportedKeys & { renderMs: number; skipped: boolean; model?: string | undefined };

/** An outbox row claimed for publishing: nobody else gets it until the claim lapses or it is marked published. */
export interface ClaimedEvent {
  id: number;
  subject: string;
  msg_id: string;
  payload: string;
}

/**
 * A committed change live clients follow (SSE, WatchSweep): a sweep whose row
 * or counters changed, a node that came online, went offline or was marked
 * down; `resync` after a lost listening connection (anything may have
 * changed). Per-job events and render progress stay in the process whose
 * node reported them (live.ts).
 */
export type Change = { type: 'sweep'; sweepId: string } | { type: 'node'; nodeId: string; status: string } | { type: 'resync' };

/** A queued job kept away from some nodes (for relaxing exclusions). */
export interface QueuedWithExclusions {
  id: string;
  sweep_id: string;
  backend: string;
  min_vram_mb: number;
  excluded: string[];
}

/** A finished job's times, newest first (ETA, straggler medians). */
export interface RecentFinish {
  finished_at: number;
  render_ms: number | null;
  node_id: string | null;
}

/** A sweep's queued jobs grouped by what they need. */
export interface QueuedRequirement {
  backend: string;
  min_vram_mb: number;
  n: number;
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
  readonly costs: CostEngine;
  readonly shares: ShareEngine;
  /** The Store's own methods, async, by entity (engine-faces.ts). */
  readonly nodes: NodeEngine;
  readonly webhooks: WebhookEngine;
  readonly listings: ListingEngine;
  readonly people: PeopleEngine;
  readonly retention: RetentionEngine;
  readonly modelHolders: ModelHolderEngine;
  /** What the gallery, albums and /metrics read (raw SQL outside the Store today). */
  readonly gallery: GalleryEngine;

  /**
   * Stores a sweep and its jobs atomically (jobs in batches, taken from the
   * iterable as they are made: a lazy expansion is never held whole), its
   * counters and its sweep.created event.
   */
  createSweep(sweep: NewSweep, jobs: Iterable<NewJob>, id?: string): Promise<SweepRow>;
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
  leaseNext(nodeId: string, caps: NodeCaps, leaseMs: number, models?: PickModels): Promise<JobRow | undefined>;
  /** Extends the leases of jobs this node says it still holds: its own leases and its straggler copies. */
  renewLeases(nodeId: string, jobIds: string[], leaseMs: number): Promise<void>;
  /**
   * A node's heartbeat, in one transaction: its last_seen (nodes.touchNode),
   * the leases of the jobs it runs renewed (renewLeases), and of those jobs the
   * ones no longer its own, by id: finished, cancelled or failed, gone, or
   * leased to other nodes (a job back in the queue stays with it). Another
   * replica may have ended them (a sweep cancelled there, a straggler copy won
   * there), so the hub tells the node to stop them.
   */
  heartbeat(nodeId: string, runningJobIds: string[], leaseMs: number): Promise<string[]>;
  /**
   * Requeues leased jobs whose lease ran out (returns them as they were) and
   * drops expired straggler copies; a job whose copy is still alive is handed
   * to the copy instead of requeued.
   */
  expireLeases(): Promise<JobRow[]>;
  /**
   * Settles every sweep that has jobs, is not final, and has none left queued
   * or leased; returns how many it settled. A completion settles its sweep
   * itself; on PostgreSQL the last two jobs may finish at once, and the
   * sweep is then settled just after their commits (settleAfterCommit): a
   * coordinator that died in between leaves it to this.
   */
  settleIdleSweeps(): Promise<number>;
  /**
   * Cancels the open sweeps whose parts stopped short when the coordinator
   * storing them stopped (createSweep in parts): at start, and in the hub's
   * tick (on PostgreSQL another replica's may have died); returns their ids.
   */
  endSweepsStoredShort(): Promise<string[]>;
  /** Jobs a node holds (leased to it, or a straggler copy on it), by id. */
  leasedTo(nodeId: string): Promise<JobRow[]>;
  /**
   * A node this replica served is gone (silent, or its stream broke and it
   * did not come back in time): nodes.markNodeDown, unless it registered
   * through another live replica since (PostgreSQL), then nothing (undefined):
   * its work is not taken from it there.
   */
  markNodeDownIfOurs(nodeId: string, why: string): Promise<JobRow[] | undefined>;
  /** nodes.setNodeStatus(offline) under the same rule (its stream here ended); whether it was marked. */
  markNodeOfflineIfOurs(nodeId: string): Promise<boolean>;
  /** Everything a node holds goes back (it went silent): its copies end, its leases go to their copies or the queue. Returns its leases as they were, by id. */
  releaseNode(nodeId: string, reason: string): Promise<JobRow[]>;

  /** A slow job worth a second copy on this idle node: leased elsewhere since before `startedBefore`, its sweep's queue empty. */
  straggler(nodeId: string, caps: NodeCaps, startedBefore: number): Promise<string | undefined>;
  /** Whether any leased job at all could get a copy now (the node-free part of `straggler`): a fill asks once before its idle nodes ask. */
  anyStraggler(startedBefore: number): Promise<boolean>;
  /** Gives this node a straggler copy of a leased job (none already; never its own holder); the first result wins. */
  leaseCopy(jobId: string, nodeId: string, leaseMs: number): Promise<JobRow | undefined>;
  /** Ends a straggler copy; the original carries on. */
  dropCopy(jobId: string): Promise<void>;
  /** Records a finished render (first report wins; its image announced once; the sweep settled when it was the last). */
  completeJob(jobId: string, nodeId: string, report: CompletionReport): Promise<CompleteOutcome>;
  /** Records a failure as placement.ts's decideFailure rules it (exclusion, VRAM floor, backoff, blocklist). */
  failJob(jobId: string, node: FailingNode, failure: Failure): Promise<{ job: JobRow; blocklisted: boolean } | undefined>;
  /**
   * Returns leased jobs to the queue with a reason (their copies end).
   * `refundAttempt`: the node handed them back without failing them (it left
   * the farm): that lease does not count towards maxAttempts.
   */
  requeue(jobIds: string[], reason: string, opts?: { refundAttempt?: boolean }): Promise<void>;
  /**
   * The holder could not fetch the job's registry model (JobFailed.model_unavailable):
   * the node is excluded for the job and the lease does not count as an
   * attempt; a copy carries on as the only holder. Returns the job as it was,
   * or undefined when the node did not hold it.
   */
  returnUnfetched(jobId: string, nodeId: string, error: string): Promise<JobRow | undefined>;

  /** Creates or updates `user` with a new key (only its hash); undefined when the user already holds an active key. */
  addKey(user: NewUser, hash: string): Promise<{ id: string } | undefined>;
  /**
   * The farm's first key (POST /api/keys on an open farm): added only while no
   * user holds an active key, checked in the insert's transaction, so of two
   * concurrent first keys (any replicas) one is refused; undefined then.
   */
  addFirstKey(user: NewUser, hash: string): Promise<{ id: string } | undefined>;
  getUser(name: string): Promise<UserRow | undefined>;
  /** The user whose active key has this hash. */
  userByKeyHash(hash: string): Promise<UserRow | undefined>;
  /** Revokes every active key of `name`; how many. */
  revokeKeys(name: string): Promise<number>;
  /**
   * As revokeKeys, unless `name` holds the farm's last active admin key (then
   * undefined, nothing revoked): checked in the revocation's transaction, so
   * two admins revoked at once (any replicas) never leave none.
   */
  revokeKeysKeepingAnAdmin(name: string): Promise<number | undefined>;

  /** Cancels a sweep: its queued and leased jobs end cancelled (sweep.cancelled announced); returns the leased ones as they were, by index, for the caller to stop. */
  cancelSweep(sweepId: string): Promise<JobRow[]>;
  /** Pause stops new dispatch (running jobs finish); resume restarts it and wakes pickers. False for a finished or unknown sweep. */
  setPaused(sweepId: string, paused: boolean): Promise<boolean>;
  setPriority(sweepId: string, priority: number): Promise<boolean>;

  /** The nodes blocklisted for a sweep, by id. */
  blockedNodes(sweepId: string): Promise<string[]>;
  recentFinishes(sweepId: string, limit: number): Promise<RecentFinish[]>;
  /** A sweep's queued jobs by VRAM floor, smallest first. */
  queuedRequirements(sweepId: string, floors?: readonly number[]): Promise<QueuedRequirement[]>;
  /** A sweep's distinct queued VRAM floors with its backend, smallest first: nothing counted (explain counts only the groups it names). */
  queuedFloors(sweepId: string): Promise<Omit<QueuedRequirement, 'n'>[]>;
  /** Queued jobs that have exclusions (never a scan of the queue), by id, each one's nodes by id. */
  queuedWithExclusions(limit: number): Promise<QueuedWithExclusions[]>;
  clearExclusions(jobId: string): Promise<void>;
  /** Fails a sweep's queued jobs (no node can run them) and the sweep with them; how many. */
  failQueued(sweepId: string, reason: string): Promise<number>;
  /** Fails one queued job for good (no card has the VRAM it needs). */
  failQueuedJob(jobId: string, reason: string): Promise<void>;
  /** Jobs a node holds, leased or as copies (its used prefetch capacity). */
  heldCount(nodeId: string): Promise<number>;
  /**
   * After a coordinator restart: every lease and copy lease lasts at least
   * `graceMs` more, so the nodes holding the work can reconnect; how many
   * leases. On PostgreSQL only those of nodes no live replica serves.
   */
  extendAllLeases(graceMs: number): Promise<number>;

  /** Appends an event to the outbox (state changes append theirs in their own transaction). */
  appendEvent(subject: string, msgId: string, payload: unknown): Promise<void>;
  /** Claims up to `limit` unpublished events, oldest first, for `claimMs`; a concurrent claimer gets others. */
  claimEvents(limit: number, claimMs: number): Promise<ClaimedEvent[]>;
  markPublished(ids: number[]): Promise<void>;

  /**
   * Calls `onWake` after any connection onto this database (another replica's
   * too) commits new or returned queued jobs or new outbox rows; a hint to
   * pick or publish again, never the data itself (a wake may be repeated, and
   * one after a lost listening connection says both). Resolves once listening.
   */
  subscribe(onWake: (wake: Wake) => void): Promise<() => Promise<void>>;

  /**
   * Calls `onChange` after any connection onto this database commits a change
   * live clients show (at least once per sweep or node per commit; a change
   * may be told twice). Resolves once listening.
   */
  subscribeChanges(onChange: (change: Change) => void): Promise<() => Promise<void>>;

  /** Takes a periodic duty (node timeouts, outbox publishing, pruning) unless another holder has it. */
  lead(duty: string): Promise<Leadership | undefined>;

  /**
   * Runs `fn` once everything written so far is committed, never when it is
   * rolled back: at once where every call commits before it resolves
   * (PostgreSQL; SQLite by default), at the end of the event-loop turn where
   * SQLite batches turns (`SqliteEngine.batchTurns`). What a node is told goes
   * through here, so it never hears of a lease a crash could undo.
   */
  afterCommit(fn: () => void): void;
  /** Resolves once everything written so far is committed; rejects when that commit failed. */
  committed(): Promise<void>;
  /**
   * Runs `fn` (and all it awaits) with every write committed before it
   * resolves, as on PostgreSQL: an HTTP or gRPC answer tells only of what is
   * durable. (SQLite: the open turn commits first; nothing joins it.)
   */
  unbatched<T>(fn: () => T): T;
  /** A failure of the database rather than of the call (busy, full, away, a deadlock): worth trying again. */
  isTransient(err: unknown): boolean;
  /** Runs `fn` with its writes batched again inside an `unbatched` caller: work handed on whose effects wait for the commit anyway (the node hub's fills). */
  batched<T>(fn: () => T): T;
  /** Commits what is open now (SQLite's turn), so a read that follows at once sees only what is durable; a no-op where every call commits. */
  flush(): void;

  /** Resolves when the database answers a trivial query (readiness probes); rejects when it does not or the engine is closed. */
  ping(): Promise<void>;

  /** Releases this engine's connections (and with them its leaderships). */
  close(): Promise<void>;
}

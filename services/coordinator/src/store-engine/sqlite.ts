/**
 * The SQLite engine: the StoreEngine interface over the coordinator's own
 * synchronous Store and Scheduler, delegating every write to them (one
 * process owns the file, so a pick and its lease in one transaction cannot
 * race). What exists only for several replicas is kept in this process:
 * outbox and webhook delivery claims, leaderships, wake listeners and which models each node
 * holds are per Store, shared by every engine over it. Nothing here writes
 * SQL of its own: nodes, webhooks, listings, people and retention are the
 * Store's own methods made async (engine-faces.ts); the gallery face runs
 * gallery.ts's functions and albums.ts's and metrics.ts's read-only queries
 * on the Store's handle (gallery-face.ts).
 */
import { isTransientDbError, openDb } from '../db.js';
import type { NodeCaps } from '../placement.js';
import { Scheduler } from '../scheduler.js';
import { Store, type StoreOptions } from '../store.js';
import { SqliteCosts, SqliteShares } from './sqlite-side-stores.js';
import { SqliteModelHolders } from './model-holders.js';
import { SqliteGallery } from './gallery-face.js';
import { LISTING_METHODS, NODE_METHODS, PEOPLE_METHODS, RETENTION_METHODS, asyncFace } from './engine-faces.js';
import { sqliteWebhooks } from './sqlite-webhook-claims.js';
import type { ListingEngine, NodeEngine, PeopleEngine, RetentionEngine, WebhookEngine } from './engine-faces.js';
import type { Change, ClaimedEvent, CompletionReport, Leadership, NewSweep, NewUser, PickModels, QueuedRequirement, QueuedWithExclusions, RecentFinish, StoreEngine, UserRow, Wake } from './engine.js';
import type { Failure, FailingNode } from '../placement.js';
import { newSweepId, type CompleteOutcome, type JobRow, type NewJob, type SweepCounts, type SweepRow } from '../store/rows.js';
import { SweepParts, SWEEP_PART_JOBS } from './sqlite-sweep-parts.js';

export { SWEEP_PART_JOBS } from './sqlite-sweep-parts.js';

/** The Store with a public outbox append (the Store appends only inside its own state changes). */
export class EngineStore extends Store {
  appendEvent(subject: string, msgId: string, payload: unknown): void {
    this.write(() => this.enqueue(subject, msgId, payload));
  }
}

/** What a process keeps beside its SQLite file: the scheduler, outbox claims, duty holders, wake listeners. */
interface ProcessState {
  scheduler: Scheduler;
  /** The asking node's models during one pick (the scheduler reads them synchronously inside it). */
  pickModels: PickModels | undefined;
  /** Outbox id → when its claim lapses. */
  claims: Map<number, number>;
  /** Webhook delivery id → when its claim lapses. */
  deliveryClaims: Map<number, number>;
  /** Duty → the leadership holding it. */
  leaders: Map<string, SqliteLeadership>;
  wakes: Set<(wake: Wake) => void>;
  /** A sweep is being stored or resumed through an engine now: its commit wakes pickers. */
  queueing: boolean;
  /** Runs a write that queues jobs (sets `queueing` around it). */
  queueingWrite<T>(work: () => T): T;
  /** The big sweeps being stored in parts. */
  parts: SweepParts;
  /** Node → the registry models it holds (ModelHolderEngine). */
  held: Map<string, readonly string[]>;
}

const processes = new WeakMap<Store, ProcessState>();
const NO_HOLDERS: ReadonlyMap<string, number> = new Map();

function stateOf(store: Store): ProcessState {
  let s = processes.get(store);
  if (s) return s;
  const queueingWrite = <T>(work: () => T): T => {
    state.queueing = true;
    try {
      return work();
    } finally {
      state.queueing = false;
    }
  };
  const state: ProcessState = {
    scheduler: new Scheduler(store.db, { of: () => state.pickModels?.state, holderCounts: () => state.pickModels?.holderCounts ?? NO_HOLDERS }),
    pickModels: undefined,
    claims: new Map(),
    deliveryClaims: new Map(),
    leaders: new Map(),
    wakes: new Set(),
    queueing: false,
    queueingWrite,
    parts: new SweepParts(store, queueingWrite),
    held: new Map(),
  };
  // The Store tells of every committed change: a job back in the queue, a new sweep, outbox rows.
  store.onCommit((c) => {
    const wake = { jobs: state.queueing || c.events.some((e) => e.type === 'job' && e.state === 'queued'), outbox: c.outbox };
    if (wake.jobs || wake.outbox) for (const listener of state.wakes) listener(wake);
  });
  processes.set(store, (s = state));
  return s;
}

const byId = (rows: JobRow[]): JobRow[] => rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

class SqliteLeadership implements Leadership {
  private ended = false;
  private end!: () => void;
  readonly lost = new Promise<void>((resolve) => (this.end = resolve));

  constructor(
    readonly duty: string,
    readonly owner: SqliteEngine,
    private readonly leaders: Map<string, SqliteLeadership>,
  ) {}

  held(): boolean {
    return !this.ended;
  }

  async release(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (this.leaders.get(this.duty) === this) this.leaders.delete(this.duty);
    this.end();
  }
}

export class SqliteEngine implements StoreEngine {
  readonly kind = 'sqlite';
  private readonly state: ProcessState;
  private closed = false;
  private readonly subscriptions = new Set<(wake: Wake) => void>();
  private readonly unsubscribers = new Set<() => void>();
  readonly costs: SqliteCosts;
  readonly shares: SqliteShares;
  readonly nodes: NodeEngine;
  readonly webhooks: WebhookEngine;
  readonly listings: ListingEngine;
  readonly people: PeopleEngine;
  readonly retention: RetentionEngine;
  readonly modelHolders: SqliteModelHolders;
  readonly gallery: SqliteGallery;

  /** Opens (and migrates) a SQLite file; closing the engine closes it. */
  static open(file: string, opts: Partial<StoreOptions> = {}): SqliteEngine {
    return new SqliteEngine(new EngineStore(openDb(file), opts), true);
  }

  /**
   * `scheduler`: the coordinator's own (it knows the nodes' model caches); the
   * first engine over a Store decides, later ones share it.
   */
  constructor(
    readonly store: EngineStore,
    private readonly ownsDb = false,
  ) {
    this.state = stateOf(store);
    this.costs = new SqliteCosts(store);
    this.shares = new SqliteShares(store);
    const nodes = asyncFace(store, NODE_METHODS);
    // The leases a node held, by id (as releaseNode gives them).
    this.nodes = { ...nodes, markNodeDown: async (nodeId, why) => byId(await nodes.markNodeDown(nodeId, why)) };
    this.webhooks = sqliteWebhooks(store, this.state.deliveryClaims);
    this.listings = asyncFace(store, LISTING_METHODS, false);
    this.people = asyncFace(store, PEOPLE_METHODS);
    this.retention = asyncFace(store, RETENTION_METHODS);
    this.modelHolders = new SqliteModelHolders(store, this.state.held);
    this.gallery = new SqliteGallery(store.db);
  }

  /**
   * A sweep bigger than a part whose jobs the expansion counted beforehand
   * (`expectedJobs`) is stored in parts (sqlite-sweep-parts.ts): nodes start
   * on the first while the rest are made. Resolves once every part is stored.
   */
  async createSweep(sweep: NewSweep, jobs: Iterable<NewJob>, id = newSweepId()): Promise<SweepRow> {
    const expected = sweep.expectedJobs;
    if (expected === undefined || expected <= SWEEP_PART_JOBS) return this.state.queueingWrite(() => this.store.createSweep(sweep, jobs, id));
    await this.state.parts.create(sweep, expected, jobs, id);
    return (await this.getSweep(id))!;
  }

  /** Cancels the sweeps whose parts stopped short when the coordinator stopped (sqlite-sweep-parts.ts); returns their ids. */
  async endSweepsStoredShort(): Promise<string[]> {
    return this.state.parts.endStoredShort();
  }

  async getSweep(id: string): Promise<SweepRow | undefined> {
    return this.store.getSweep(id);
  }

  async getJob(id: string): Promise<JobRow | undefined> {
    return this.store.getJob(id);
  }

  async counts(sweepId: string): Promise<SweepCounts> {
    return this.store.counts(sweepId);
  }

  async exclusions(jobId: string): Promise<string[]> {
    return this.store.exclusions(jobId);
  }

  async leaseNext(nodeId: string, caps: NodeCaps, leaseMs: number, models?: PickModels): Promise<JobRow | undefined> {
    return this.store.transaction(() => {
      this.state.pickModels = models;
      try {
        const id = this.state.scheduler.pick(nodeId, caps, this.store.opts.now());
        return id === undefined ? undefined : this.store.lease([id], nodeId, leaseMs)[0];
      } finally {
        this.state.pickModels = undefined;
      }
    });
  }

  async heartbeat(nodeId: string, runningJobIds: string[], leaseMs: number): Promise<string[]> {
    return this.store.heartbeat(nodeId, runningJobIds, leaseMs);
  }

  async renewLeases(nodeId: string, jobIds: string[], leaseMs: number): Promise<void> {
    this.store.renewLeases(nodeId, jobIds, leaseMs);
  }

  async expireLeases(): Promise<JobRow[]> {
    return byId(this.store.expireLeases());
  }

  /** Also cancels a sweep whose parts stopped short and could not be cancelled then. */
  async settleIdleSweeps(): Promise<number> {
    this.state.parts.endUnended();
    return this.store.settleIdleSweeps();
  }

  async leasedTo(nodeId: string): Promise<JobRow[]> {
    return byId(this.store.leasedTo(nodeId));
  }

  /** One process serves every node of its file: always ours. */
  async markNodeDownIfOurs(nodeId: string, why: string): Promise<JobRow[]> {
    return this.nodes.markNodeDown(nodeId, why);
  }

  async markNodeOfflineIfOurs(nodeId: string): Promise<boolean> {
    this.store.setNodeStatus(nodeId, 'offline');
    return true;
  }

  async releaseNode(nodeId: string, reason: string): Promise<JobRow[]> {
    return byId(this.store.releaseNode(nodeId, reason));
  }

  async straggler(nodeId: string, caps: NodeCaps, startedBefore: number): Promise<string | undefined> {
    return this.state.scheduler.straggler(nodeId, caps, startedBefore);
  }

  async anyStraggler(startedBefore: number): Promise<boolean> {
    return this.state.scheduler.anyStraggler(startedBefore);
  }

  async leaseCopy(jobIdValue: string, nodeId: string, leaseMs: number): Promise<JobRow | undefined> {
    return this.store.leaseCopy(jobIdValue, nodeId, leaseMs);
  }

  async dropCopy(jobIdValue: string): Promise<void> {
    this.store.dropCopy(jobIdValue);
  }

  async completeJob(jobId: string, nodeId: string, report: CompletionReport): Promise<CompleteOutcome> {
    return this.store.completeJob(jobId, nodeId, report);
  }

  async failJob(jobId: string, node: FailingNode, failure: Failure): Promise<{ job: JobRow; blocklisted: boolean } | undefined> {
    return this.store.failJob(jobId, node, failure);
  }

  async requeue(jobIds: string[], reason: string, opts: { refundAttempt?: boolean } = {}): Promise<void> {
    this.store.requeue(jobIds, reason, opts);
  }

  async returnUnfetched(jobIdValue: string, nodeId: string, error: string): Promise<JobRow | undefined> {
    return this.store.returnUnfetched(jobIdValue, nodeId, error);
  }

  async cancelSweep(sweepId: string): Promise<JobRow[]> {
    return this.store.cancelSweep(sweepId);
  }

  async setPaused(sweepId: string, paused: boolean): Promise<boolean> {
    // A resumed sweep's queued jobs can be picked again: its commit wakes pickers.
    this.state.queueing = !paused;
    try {
      return this.store.setPaused(sweepId, paused);
    } finally {
      this.state.queueing = false;
    }
  }

  async setPriority(sweepId: string, priority: number): Promise<boolean> {
    return this.store.setPriority(sweepId, priority);
  }

  async blockedNodes(sweepId: string): Promise<string[]> {
    return this.store.blockedNodes(sweepId).sort();
  }

  async recentFinishes(sweepId: string, limit: number): Promise<RecentFinish[]> {
    return this.store.recentFinishes(sweepId, limit);
  }

  async queuedRequirements(sweepId: string, floors?: readonly number[]): Promise<QueuedRequirement[]> {
    return this.store.queuedRequirements(sweepId, floors).sort((a, b) => a.min_vram_mb - b.min_vram_mb);
  }

  async queuedFloors(sweepId: string): Promise<Omit<QueuedRequirement, 'n'>[]> {
    return this.store.queuedFloors(sweepId);
  }

  async queuedWithExclusions(limit: number): Promise<QueuedWithExclusions[]> {
    return this.store
      .queuedWithExclusions(limit)
      .map((r) => ({ ...r, excluded: r.excluded.sort() }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async clearExclusions(jobIdValue: string): Promise<void> {
    this.store.clearExclusions(jobIdValue);
  }

  async failQueued(sweepId: string, reason: string): Promise<number> {
    const n = this.store.failQueued(sweepId, reason);
    this.state.parts.failedQueued(sweepId, reason);
    return n;
  }

  async failQueuedJob(jobIdValue: string, reason: string): Promise<void> {
    this.store.failQueuedJob(jobIdValue, reason);
  }

  async heldCount(nodeId: string): Promise<number> {
    return this.store.heldCount(nodeId);
  }

  async extendAllLeases(graceMs: number): Promise<number> {
    return this.store.extendAllLeases(graceMs);
  }

  async addKey(user: NewUser, hash: string): Promise<{ id: string } | undefined> {
    return this.store.addKey(user, hash);
  }

  async addFirstKey(user: NewUser, hash: string): Promise<{ id: string } | undefined> {
    return this.store.transaction(() => (this.store.hasActiveKeys() ? undefined : this.store.addKey(user, hash)));
  }

  async getUser(name: string): Promise<UserRow | undefined> {
    return this.store.getUser(name);
  }

  async userByKeyHash(hash: string): Promise<UserRow | undefined> {
    return this.store.userByKeyHash(hash);
  }

  async revokeKeys(name: string): Promise<number> {
    return this.store.revokeKeys(name);
  }

  async revokeKeysKeepingAnAdmin(name: string): Promise<number | undefined> {
    return this.store.transaction(() => {
      const admins = this.store.activeAdmins();
      return admins.length === 1 && admins[0] === name ? undefined : this.store.revokeKeys(name);
    });
  }

  async subscribe(onWake: (wake: Wake) => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('store engine closed');
    // A listener of its own, so one subscribed twice is unsubscribed once each.
    const listener = (wake: Wake) => onWake(wake);
    this.state.wakes.add(listener);
    this.subscriptions.add(listener);
    return async () => {
      this.state.wakes.delete(listener);
      this.subscriptions.delete(listener);
    };
  }

  async subscribeChanges(onChange: (change: Change) => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('store engine closed');
    // The Store's own commit events, less per-job ones (they stay with the hub that made them).
    const off = this.store.onCommit((c) => {
      for (const e of c.events) if (e.type === 'sweep' || e.type === 'node') onChange(e);
    });
    this.unsubscribers.add(off);
    return async () => {
      off();
      this.unsubscribers.delete(off);
    };
  }

  async appendEvent(subject: string, msgId: string, payload: unknown): Promise<void> {
    this.store.appendEvent(subject, msgId, payload);
  }

  async claimEvents(limit: number, claimMs: number): Promise<ClaimedEvent[]> {
    const now = this.store.opts.now();
    const { claims } = this.state;
    for (const [id, until] of claims) if (until <= now) claims.delete(id);
    // Claimed rows are still unpublished: read past them.
    const rows = this.store.pendingEvents(limit + claims.size).filter((r) => !claims.has(r.id)).slice(0, limit);
    for (const r of rows) claims.set(r.id, now + claimMs);
    return rows;
  }

  async markPublished(ids: number[]): Promise<void> {
    this.store.markPublished(ids);
    for (const id of ids) this.state.claims.delete(id);
  }

  async lead(duty: string): Promise<Leadership | undefined> {
    if (this.closed) throw new Error('store engine closed');
    const { leaders } = this.state;
    if (leaders.has(duty)) return undefined;
    const leadership = new SqliteLeadership(duty, this, leaders);
    leaders.set(duty, leadership);
    return leadership;
  }

  /**
   * Writes join one transaction per event-loop turn from now on (StoreBase.batchTurns):
   * at 1,000 nodes a turn holds many results and leases, and one commit writes
   * each page once. `lost` hears of a turn whose commit failed.
   */
  batchTurns(lost: (err: unknown) => void, failed: (err: unknown) => void): void {
    this.store.batchTurns(lost, failed);
  }

  afterCommit(fn: () => void): void {
    this.store.afterCommit(fn);
  }

  committed(): Promise<void> {
    return this.store.committed();
  }

  unbatched<T>(fn: () => T): T {
    return this.store.unbatched(fn);
  }

  flush(): void {
    this.store.flush();
  }

  batched<T>(fn: () => T): T {
    return this.store.batched(fn);
  }

  isTransient(err: unknown): boolean {
    return isTransientDbError(err);
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('store engine closed');
    this.store.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const l of [...this.state.leaders.values()]) if (l.owner === this) await l.release();
    for (const listener of this.subscriptions) this.state.wakes.delete(listener);
    this.subscriptions.clear();
    for (const off of this.unsubscribers) off();
    this.unsubscribers.clear();
    if (this.ownsDb) {
      this.store.flush();
      this.store.db.close();
    }
  }
}

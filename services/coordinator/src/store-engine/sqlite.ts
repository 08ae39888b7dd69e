/**
 * The SQLite engine: the StoreEngine interface over the coordinator's own
 * synchronous Store and Scheduler, delegating every write to them (one
 * process owns the file, so a pick and its lease in one transaction cannot
 * race). What exists only for several replicas is kept in this process:
 * outbox claims and leaderships are per Store, shared by every engine over it.
 */
import { openDb } from '../db.js';
import type { NodeCaps } from '../placement.js';
import { Scheduler } from '../scheduler.js';
import { Store, type StoreOptions } from '../store.js';
import type { ClaimedEvent, CompletionReport, Leadership, NewSweep, StoreEngine } from './engine.js';
import type { Failure, FailingNode } from '../placement.js';
import type { CompleteOutcome, JobRow, NewJob, SweepCounts, SweepRow } from '../store/rows.js';

/** The Store with a public outbox append (the Store appends only inside its own state changes). */
export class EngineStore extends Store {
  appendEvent(subject: string, msgId: string, payload: unknown): void {
    this.write(() => this.enqueue(subject, msgId, payload));
  }
}

/** What a process keeps beside its SQLite file: the scheduler, outbox claims, duty holders. */
interface ProcessState {
  scheduler: Scheduler;
  /** Outbox id → when its claim lapses. */
  claims: Map<number, number>;
  /** Duty → the leadership holding it. */
  leaders: Map<string, SqliteLeadership>;
}

const processes = new WeakMap<Store, ProcessState>();

function stateOf(store: Store, scheduler: Scheduler | undefined): ProcessState {
  let s = processes.get(store);
  if (!s) processes.set(store, (s = { scheduler: scheduler ?? new Scheduler(store.db), claims: new Map(), leaders: new Map() }));
  return s;
}

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
    scheduler?: Scheduler,
  ) {
    this.state = stateOf(store, scheduler);
  }

  async createSweep(sweep: NewSweep, jobs: NewJob[], id?: string): Promise<SweepRow> {
    return this.store.createSweep(sweep, jobs, id);
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

  async leaseNext(nodeId: string, caps: NodeCaps, leaseMs: number): Promise<JobRow | undefined> {
    return this.store.transaction(() => {
      const id = this.state.scheduler.pick(nodeId, caps, this.store.opts.now());
      return id === undefined ? undefined : this.store.lease([id], nodeId, leaseMs)[0];
    });
  }

  async renewLeases(nodeId: string, jobIds: string[], leaseMs: number): Promise<void> {
    this.store.renewLeases(nodeId, jobIds, leaseMs);
  }

  async expireLeases(): Promise<JobRow[]> {
    return this.store.expireLeases();
  }

  async completeJob(jobId: string, nodeId: string, report: CompletionReport): Promise<CompleteOutcome> {
    return this.store.completeJob(jobId, nodeId, report);
  }

  async failJob(jobId: string, node: FailingNode, failure: Failure): Promise<{ job: JobRow; blocklisted: boolean } | undefined> {
    return this.store.failJob(jobId, node, failure);
  }

  async requeue(jobIds: string[], reason: string): Promise<void> {
    this.store.requeue(jobIds, reason);
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const l of [...this.state.leaders.values()]) if (l.owner === this) await l.release();
    if (this.ownsDb) this.store.db.close();
  }
}

/**
 * The PostgreSQL engine: the StoreEngine interface for several coordinator
 * replicas on one database. A pick and its lease are one statement (the
 * scheduler's rule with FOR UPDATE SKIP LOCKED, postgres-pick.ts), so
 * replicas never lease a job twice; counters are kept by triggers in the same
 * transaction as each change (postgres-schema.ts); outbox rows are claimed
 * with SKIP LOCKED and a claim that lapses when its replica dies; each
 * periodic duty is a session advisory lock on a connection of its own, so it
 * passes to another replica as soon as the holder's session ends.
 *
 * Commits that queue jobs or write outbox rows NOTIFY (postgres-schema.ts);
 * `subscribe` LISTENs on a connection of its own, so a replica hears another's
 * new work without polling.
 *
 * Costs and shares are postgres-costs.ts and postgres-shares.ts.
 *
 * Sweep control, placement's reads and the hub's counts are postgres-control.ts.
 *
 * Nodes, webhooks, listings, people and retention are postgres-nodes.ts,
 * postgres-webhooks.ts, postgres-listings.ts and postgres-people.ts; which
 * models each node holds, postgres-model-holders.ts; the gallery's, albums'
 * and /metrics' reads, postgres-gallery.ts.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { decideFailure, type Failure, type FailingNode, type NodeCaps } from '../placement.js';
import { DEFAULT_STORE_OPTIONS, type StoreOptions } from '../store/base.js';
import { newSweepId, type CompleteOutcome, type JobRow, type NewJob, type SweepCounts, type SweepRow } from '../store/rows.js';
import type { Change, ClaimedEvent, CompletionReport, Leadership, NewSweep, NewUser, PickModels, QueuedRequirement, QueuedWithExclusions, RecentFinish, StoreEngine, UserRow, Wake } from './engine.js';
import { HAND_ON, LEASED, userColumns, byId, countsOf, dropCopyOf, enqueue, exclusionsOf, insertSweepIn, openJobsOf, openSweepIn, releaseNodeIn, settleAfterCommit, settleSweep } from './postgres-helpers.js';
import { ANALYZE_AFTER_JOBS, analyzeJobs, storeJobs } from './postgres-job-insert.js';
import { ANY_STRAGGLER_SQL, STRAGGLER_SQL } from './postgres-pick.js';
import { PgPicks } from './postgres-pick-batches.js';
import { createClient, createPool, inTransaction, isTransientPgError, notTheDatabases, retriesOf } from './postgres-pool.js';
import { LOCK_NAMESPACE, migratePostgres } from './postgres-schema.js';
import { WakeListener } from './postgres-wake.js';
import { PgCosts } from './postgres-costs.js';
import { PgShares } from './postgres-shares.js';
import { PgControl } from './postgres-control.js';
import { PgCompletions } from './postgres-completions.js';
import { PgHeartbeats } from './postgres-heartbeats.js';
import { DryQueue } from './postgres-dry-queue.js';
import { LeaseNotices } from './postgres-lease-notices.js';
import { INTERRUPTED, PgSweepParts } from './postgres-sweep-parts.js';
import { SWEEP_PART_JOBS } from './sweep-parts.js';
import { TurnBatches } from './turn-batches.js';
import { PgNodes } from './postgres-nodes.js';
import { PgWebhooks } from './postgres-webhooks.js';
import { PgListings, PgRetention } from './postgres-listings.js';
import { PgPeople } from './postgres-people.js';
import { PgModelHolders } from './postgres-model-holders.js';
import { PgGallery } from './postgres-gallery.js';

export { ANALYZE_AFTER_JOBS } from './postgres-job-insert.js';

/** The most of an application_name PostgreSQL keeps (NAMEDATALEN - 1). */
export const MAX_APPLICATION_NAME_BYTES = 63;

/**
 * Ends the straggler copies whose lease lapsed ($1 now). It reads them
 * through jobs_copy (few rows are copies): the statistics taken after a big
 * sweep include copy_node_id (analyzeJobs) so that the planner knows.
 */
export const EXPIRE_COPIES_SQL = `UPDATE jobs SET prev_node_id = copy_node_id, copy_node_id = NULL, copy_lease_expires_at = NULL
 WHERE id IN (SELECT id FROM jobs WHERE copy_node_id IS NOT NULL AND copy_lease_expires_at < $1 ORDER BY id FOR UPDATE SKIP LOCKED)`;

export interface PostgresEngineOptions extends Partial<StoreOptions> {
  url: string;
  /** Connections in the pool (leaderships use one more of their own). */
  poolSize?: number;
  /** Shown in pg_stat_activity; a random one by default. */
  applicationName?: string;
  /** How long a dry queue is trusted without a wake (postgres-dry-queue.ts; a test makes it long, so a stalled box cannot end it). */
  dryRecheckMs?: number;
  /** How long a lease's notice to live clients may wait (postgres-lease-notices.ts; a test makes it long and closes the engine to send it). */
  leaseNoticeMs?: number;
}

export class PostgresEngine implements StoreEngine {
  readonly kind = 'postgres';
  readonly applicationName: string;
  private readonly opts: StoreOptions;
  private readonly now: () => number;
  private leaderClient: Promise<pg.Client> | undefined;
  private readonly leaderships = new Map<string, PgLeadership>();
  private leading: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly wakes: WakeListener;
  readonly costs: PgCosts;
  readonly shares: PgShares;
  readonly nodes: PgNodes;
  readonly webhooks: PgWebhooks;
  readonly listings: PgListings;
  readonly people: PgPeople;
  readonly retention: PgRetention;
  readonly modelHolders: PgModelHolders;
  readonly gallery: PgGallery;
  private readonly control: PgControl;
  private readonly completions: PgCompletions;
  /** Picks, a turn's at a time (postgres-pick-batches.ts). */
  readonly picks: PgPicks;
  private readonly heartbeats: PgHeartbeats;
  private readonly dry: DryQueue;
  private readonly leaseNotices: LeaseNotices;
  private readonly parts: PgSweepParts;
  private readonly jobReads = new TurnBatches<string, JobRow | undefined>((ids) => this.readJobs(ids), { alone: notTheDatabases });

  private constructor(
    private readonly pool: pg.Pool,
    private readonly url: string,
    applicationName: string,
    opts: Partial<StoreOptions>,
    dryRecheckMs?: number,
    leaseNoticeMs?: number,
  ) {
    this.applicationName = applicationName;
    this.opts = { ...DEFAULT_STORE_OPTIONS, ...opts };
    this.now = this.opts.now;
    this.wakes = new WakeListener({ url, applicationName });
    this.costs = new PgCosts(pool, this.now);
    this.shares = new PgShares(pool, this.now);
    this.control = new PgControl(pool, this.now);
    this.completions = new PgCompletions(pool, this.now);
    this.picks = new PgPicks(pool, this.now);
    this.heartbeats = new PgHeartbeats(pool, this.now);
    this.parts = new PgSweepParts(pool, this.now, applicationName, (write) => this.queueing(write), this.opts.firstFillsWaitMs);
    this.dry = new DryQueue(pool, () => this.wakes.jobsWakes(), undefined, dryRecheckMs);
    this.leaseNotices = new LeaseNotices(pool, leaseNoticeMs);
    this.nodes = new PgNodes(pool, this.now, applicationName);
    this.webhooks = new PgWebhooks(pool, this.now);
    this.listings = new PgListings(pool);
    this.people = new PgPeople(pool);
    this.retention = new PgRetention(pool);
    this.modelHolders = new PgModelHolders(pool);
    this.gallery = new PgGallery(pool);
  }

  /** Connects and migrates (once across replicas starting together). */
  static async open(o: PostgresEngineOptions): Promise<PostgresEngine> {
    const applicationName = o.applicationName ?? `nightshift-${randomBytes(4).toString('hex')}`;
    // PostgreSQL keeps 63 bytes of it: a longer name would never match this replica's own sessions in pg_stat_activity.
    if (Buffer.byteLength(applicationName) > MAX_APPLICATION_NAME_BYTES) throw new Error(`applicationName is ${Buffer.byteLength(applicationName)} bytes; PostgreSQL keeps ${MAX_APPLICATION_NAME_BYTES}`);
    const pool = createPool({ url: o.url, applicationName, ...(o.poolSize ? { max: o.poolSize } : {}) });
    const client = await pool.connect();
    try {
      await migratePostgres(client);
    } catch (err) {
      client.release();
      await pool.end();
      throw err;
    }
    client.release();
    const { url: _url, poolSize: _poolSize, applicationName: _name, dryRecheckMs, leaseNoticeMs, ...storeOpts } = o;
    return new PostgresEngine(pool, o.url, applicationName, storeOpts, dryRecheckMs, leaseNoticeMs);
  }

  // ------------------------------------------------------------------ sweeps and jobs

  /**
   * A sweep bigger than a part whose jobs the expansion counted beforehand
   * (`expectedJobs`) is stored in parts (postgres-sweep-parts.ts): nodes start
   * on the first while the rest are made. Resolves once every part is stored.
   */
  async createSweep(sweep: NewSweep, jobs: Iterable<NewJob>, id = newSweepId()): Promise<SweepRow> {
    const expected = sweep.expectedJobs;
    if (expected !== undefined && expected > SWEEP_PART_JOBS) {
      await this.parts.create(sweep, expected, jobs, id);
      return (await this.getSweep(id))!;
    }
    const now = this.now();
    let total = 0;
    // A generator is used up once its jobs are taken: a transaction run again (after a deadlock, or on another
    // connection after a stale plan) must not store a sweep short of its jobs. One aborted before it took any runs again.
    const replayable = Array.isArray(jobs);
    let taken = false;
    const once: Iterable<NewJob> = replayable ? jobs : { [Symbol.iterator]: () => ((taken = true), jobs[Symbol.iterator]()) };
    await inTransaction(this.pool, async (c) => {
      if (taken) throw new Error(INTERRUPTED);
      await insertSweepIn(c, sweep, id, 0, now);
      // Streamed (COPY) as the expansion makes them: a 100,000-job sweep is never in memory whole.
      total = await storeJobs(c, id, once, sweep.modelHash ?? '');
      await c.query('UPDATE sweeps SET total = $1 WHERE id = $2', [total, id]);
      await openSweepIn(c, sweep, id, total, now);
    });
    this.dry.forget();
    // A big sweep changes the jobs table at once: the planner must see it before the next pick (analyzeJobs says why).
    if (total >= ANALYZE_AFTER_JOBS) await analyzeJobs(this.pool);
    return (await this.getSweep(id))!;
  }

  async getSweep(id: string): Promise<SweepRow | undefined> {
    return (await this.pool.query<SweepRow>('SELECT * FROM sweeps WHERE id = $1', [id])).rows[0];
  }

  /** Batched with the other reads of its turn: every result report reads its job first (result-reports.ts). */
  getJob(id: string): Promise<JobRow | undefined> {
    return this.jobReads.add(id);
  }

  private async readJobs(ids: readonly string[]): Promise<(JobRow | undefined)[]> {
    const { rows } = await this.pool.query<JobRow>('SELECT * FROM jobs WHERE id = ANY($1)', [[...new Set(ids)]]);
    const found = new Map(rows.map((r) => [r.id, r]));
    // A copy each: a job asked for twice is two callers' rows.
    return ids.map((id) => {
      const row = found.get(id);
      return row && { ...row };
    });
  }

  async counts(sweepId: string): Promise<SweepCounts> {
    return countsOf(this.pool, sweepId);
  }

  async exclusions(jobIdValue: string): Promise<string[]> {
    return exclusionsOf(this.pool, jobIdValue);
  }

  // ------------------------------------------------------------------ leases

  async leaseNext(nodeId: string, caps: NodeCaps, leaseMs: number, models?: PickModels): Promise<JobRow | undefined> {
    if (caps.backends.length === 0 || this.dry.isDry()) return undefined;
    const before = this.dry.mark();
    // With the other picks of its turn (postgres-pick-batches.ts).
    const job = await this.picks.pick({ nodeId, caps, leaseMs, models });
    if (!job) await this.dry.foundNothing(before);
    else this.leaseNotices.leased(job.sweep_id);
    return job;
  }

  /** Picks skipped because no job was queued anywhere (postgres-dry-queue.ts). */
  dryPicks(): number {
    return this.dry.skipped;
  }

  /** Every call commits before it resolves: nothing is ever waiting. */
  afterCommit(fn: () => void): void {
    fn();
  }

  async committed(): Promise<void> {}

  unbatched<T>(fn: () => T): T {
    return fn();
  }

  flush(): void {}

  batched<T>(fn: () => T): T {
    return fn();
  }

  isTransient(err: unknown): boolean {
    return isTransientPgError(err);
  }

  /** Batched with the other heartbeats of its turn (postgres-heartbeats.ts). */
  heartbeat(nodeId: string, runningJobIds: string[], leaseMs: number): Promise<string[]> {
    return this.heartbeats.beat({ nodeId, running: runningJobIds, leaseMs });
  }

  /** As a heartbeat renews them (postgres-heartbeats.ts), at once. */
  renewLeases(nodeId: string, jobIds: string[], leaseMs: number): Promise<void> {
    return this.heartbeats.renewFor(nodeId, jobIds, leaseMs);
  }

  async expireLeases(): Promise<JobRow[]> {
    const now = this.now();
    const rows = await inTransaction(this.pool, async (c) => {
      // Expired copies end first (their node is silent), so a job whose copy also lapsed is requeued.
      await c.query(EXPIRE_COPIES_SQL, [now]);
      // Rows another replica is expiring right now are skipped, not waited for; RETURNING gives them as they were.
      return (
        await c.query<JobRow>(
          `WITH expired AS (
             SELECT * FROM jobs WHERE state = 'leased' AND lease_expires_at < $1 ORDER BY id FOR UPDATE SKIP LOCKED
           )
           UPDATE jobs j SET ${HAND_ON}, error = CASE WHEN e.copy_node_id IS NULL THEN 'lease expired' ELSE j.error END
             FROM expired e WHERE j.id = e.id
           RETURNING e.*`,
          [now],
        )
      ).rows;
    });
    if (rows.length) this.dry.forget();
    // Those handed to their copy are still leased: only the requeued are returned.
    return byId(rows.filter((j) => j.copy_node_id === null));
  }

  /** Cancels the sweeps whose parts stopped short: this replica's before it stopped, and those of replicas gone (postgres-sweep-parts.ts; the hub's tick asks every 5 s). */
  async endSweepsStoredShort(): Promise<string[]> {
    return this.parts.endStoredShort();
  }

  async settleIdleSweeps(): Promise<number> {
    const { rows } = await this.pool.query<{ id: string }>(
      `SELECT s.id FROM sweeps s WHERE s.status IN ('queued', 'running', 'paused') AND s.total > 0 AND NOT EXISTS (${openJobsOf('s.id')}) ORDER BY s.id`,
    );
    let settled = 0;
    // One that fails is left for the next call; the rest still go.
    for (const { id } of rows) if (await settleAfterCommit(this.pool, id, this.now())) settled++;
    return settled;
  }

  async leasedTo(nodeId: string): Promise<JobRow[]> {
    return byId((await this.pool.query<JobRow>(`SELECT * FROM jobs WHERE state = 'leased' AND (node_id = $1 OR copy_node_id = $1)`, [nodeId])).rows);
  }

  markNodeDownIfOurs(nodeId: string, why: string): Promise<JobRow[] | undefined> {
    return this.queueing(this.nodes.markNodeDownIfOurs(nodeId, why));
  }

  markNodeOfflineIfOurs(nodeId: string): Promise<boolean> {
    return this.nodes.markNodeOfflineIfOurs(nodeId);
  }

  async releaseNode(nodeId: string, reason: string): Promise<JobRow[]> {
    return this.queueing(inTransaction(this.pool, (c) => releaseNodeIn(c, nodeId, reason)));
  }

  async straggler(nodeId: string, caps: NodeCaps, startedBefore: number): Promise<string | undefined> {
    if (caps.backends.length === 0) return undefined;
    return (await this.pool.query<{ id: string }>(STRAGGLER_SQL, [nodeId, caps.backends, caps.vramMb, startedBefore])).rows[0]?.id;
  }

  async anyStraggler(startedBefore: number): Promise<boolean> {
    return (await this.pool.query(ANY_STRAGGLER_SQL, [startedBefore])).rows.length > 0;
  }

  async leaseCopy(jobIdValue: string, nodeId: string, leaseMs: number): Promise<JobRow | undefined> {
    const { rows } = await this.pool.query<JobRow>(
      `UPDATE jobs SET copy_node_id = $1, copy_lease_expires_at = $2 WHERE id = $3 AND state = 'leased' AND copy_node_id IS NULL AND node_id <> $1 RETURNING *`,
      [nodeId, this.now() + leaseMs, jobIdValue],
    );
    return rows[0];
  }

  async dropCopy(jobIdValue: string): Promise<void> {
    await dropCopyOf(this.pool, jobIdValue);
  }

  async requeue(jobIds: string[], reason: string, opts: { refundAttempt?: boolean } = {}): Promise<void> {
    if (jobIds.length === 0) return;
    // Locked in id order first (\`locked\`), the order a batch of completions takes them.
    await this.pool.query(
      `WITH locked AS (SELECT j.id FROM jobs j WHERE j.id = ANY($2) AND ${LEASED('j')} ORDER BY j.id FOR UPDATE)
       UPDATE jobs SET state = 'queued', prev_node_id = COALESCE(node_id, prev_node_id), node_id = NULL, lease_expires_at = NULL,
         copy_node_id = NULL, copy_lease_expires_at = NULL, error = $1, attempts = GREATEST(0, attempts - $3)
        FROM locked WHERE jobs.id = locked.id`,
      [reason, jobIds, opts.refundAttempt ? 1 : 0],
    );
    this.dry.forget();
  }

  async returnUnfetched(jobIdValue: string, nodeId: string, error: string): Promise<JobRow | undefined> {
    return this.queueing(inTransaction(this.pool, async (c) => {
      const job = (await c.query<JobRow>('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', [jobIdValue])).rows[0];
      if (!job || job.state !== 'leased' || (job.node_id !== nodeId && job.copy_node_id !== nodeId)) return undefined;
      await c.query('INSERT INTO job_exclusions (job_id, node_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [job.id, nodeId]);
      if (job.copy_node_id === nodeId) await dropCopyOf(c, job.id);
      else if (job.copy_node_id) {
        await c.query('UPDATE jobs SET node_id = copy_node_id, lease_expires_at = copy_lease_expires_at, copy_node_id = NULL, copy_lease_expires_at = NULL, error = $1 WHERE id = $2', [
          error, job.id,
        ]);
      } else {
        await c.query(
          `UPDATE jobs SET state = 'queued', prev_node_id = node_id, node_id = NULL, lease_expires_at = NULL, attempts = GREATEST(attempts - 1, 0), error = $1 WHERE id = $2`,
          [error, job.id],
        );
      }
      return job;
    }));
  }

  // ------------------------------------------------------------------ sweep control, placement, dispatch counts (postgres-control.ts)

  cancelSweep(sweepId: string): Promise<JobRow[]> {
    return this.control.cancelSweep(sweepId);
  }

  setPaused(sweepId: string, paused: boolean): Promise<boolean> {
    return paused ? this.control.setPaused(sweepId, paused) : this.queueing(this.control.setPaused(sweepId, paused));
  }

  /**
   * A write that may queue jobs: this engine's next pick looks again at once
   * (postgres-dry-queue.ts), not after its own wake comes back.
   */
  private queueing<T>(write: Promise<T>): Promise<T> {
    return write.finally(() => this.dry.forget());
  }

  setPriority(sweepId: string, priority: number): Promise<boolean> {
    return this.control.setPriority(sweepId, priority);
  }

  blockedNodes(sweepId: string): Promise<string[]> {
    return this.control.blockedNodes(sweepId);
  }

  recentFinishes(sweepId: string, limit: number): Promise<RecentFinish[]> {
    return this.control.recentFinishes(sweepId, limit);
  }

  queuedRequirements(sweepId: string, floors?: readonly number[]): Promise<QueuedRequirement[]> {
    return this.control.queuedRequirements(sweepId, floors);
  }

  queuedFloors(sweepId: string): Promise<Omit<QueuedRequirement, 'n'>[]> {
    return this.control.queuedFloors(sweepId);
  }

  queuedWithExclusions(limit: number): Promise<QueuedWithExclusions[]> {
    return this.control.queuedWithExclusions(limit);
  }

  clearExclusions(jobIdValue: string): Promise<void> {
    return this.control.clearExclusions(jobIdValue);
  }

  failQueued(sweepId: string, reason: string): Promise<number> {
    return this.control.failQueued(sweepId, reason);
  }

  failQueuedJob(jobIdValue: string, reason: string): Promise<void> {
    return this.control.failQueuedJob(jobIdValue, reason);
  }

  heldCount(nodeId: string): Promise<number> {
    return this.control.heldCount(nodeId);
  }

  extendAllLeases(graceMs: number): Promise<number> {
    return this.control.extendAllLeases(graceMs);
  }

  // ------------------------------------------------------------------ users

  async addKey(user: NewUser, hash: string): Promise<{ id: string } | undefined> {
    const now = this.now();
    return inTransaction(this.pool, async (c) => {
      // Two replicas adding a key for one user take turns: the second sees the first's key.
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, `user:${user.name}`]);
      if ((await c.query('SELECT 1 FROM api_keys WHERE user_name = $1 AND revoked_at IS NULL', [user.name])).rows.length) return undefined;
      return insertKey(c, user, hash, now);
    });
  }

  async addFirstKey(user: NewUser, hash: string): Promise<{ id: string } | undefined> {
    const now = this.now();
    return inTransaction(this.pool, async (c) => {
      // Every first key takes this one lock: the second sees the first's key once it holds it.
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, 'keys:first']);
      if ((await c.query('SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1')).rows.length) return undefined;
      return insertKey(c, user, hash, now);
    });
  }

  async getUser(name: string): Promise<UserRow | undefined> {
    return (await this.pool.query<UserRow>(`SELECT ${userColumns('u')} FROM users u WHERE u.name = $1`, [name])).rows[0];
  }

  async userByKeyHash(hash: string): Promise<UserRow | undefined> {
    const { rows } = await this.pool.query<UserRow>(
      `SELECT ${userColumns('u')} FROM api_keys k JOIN users u ON u.name = k.user_name WHERE k.hash = $1 AND k.revoked_at IS NULL`,
      [hash],
    );
    return rows[0];
  }

  async revokeKeys(name: string): Promise<number> {
    return (await this.pool.query('UPDATE api_keys SET revoked_at = $1 WHERE user_name = $2 AND revoked_at IS NULL', [this.now(), name])).rowCount ?? 0;
  }

  async revokeKeysKeepingAnAdmin(name: string): Promise<number | undefined> {
    const now = this.now();
    return inTransaction(this.pool, async (c) => {
      // Every such revocation takes this one lock: the second sees the admins the first left.
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, 'keys:admins']);
      const { rows } = await c.query<{ name: string }>('SELECT DISTINCT u.name FROM users u JOIN api_keys k ON k.user_name = u.name AND k.revoked_at IS NULL WHERE u.admin = 1');
      if (rows.length === 1 && rows[0]!.name === name) return undefined;
      return (await c.query('UPDATE api_keys SET revoked_at = $1 WHERE user_name = $2 AND revoked_at IS NULL', [now, name])).rowCount ?? 0;
    });
  }

  // ------------------------------------------------------------------ wake-ups

  async subscribe(onWake: (wake: Wake) => void): Promise<() => Promise<void>> {
    return this.wakes.add(onWake);
  }

  async subscribeChanges(onChange: (change: Change) => void): Promise<() => Promise<void>> {
    return this.wakes.addChanges(onChange);
  }

  // ------------------------------------------------------------------ results

  /** Batched with the other reports of its turn (postgres-completions.ts). */
  completeJob(jobIdValue: string, nodeId: string, r: CompletionReport): Promise<CompleteOutcome> {
    return this.completions.complete({ jobId: jobIdValue, nodeId, report: r });
  }

  async failJob(jobIdValue: string, node: FailingNode, failure: Failure): Promise<{ job: JobRow; blocklisted: boolean } | undefined> {
    const now = this.now();
    let closed: string | undefined;
    const result = await inTransaction(this.pool, async (c) => {
      const job = (await c.query<JobRow>('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', [jobIdValue])).rows[0];
      if (!job || job.state !== 'leased') return undefined;
      if (job.copy_node_id === node.id) {
        // A straggler copy failed: the original is still running; just drop the copy.
        await dropCopyOf(c, job.id);
        return { job: (await c.query<JobRow>('SELECT * FROM jobs WHERE id = $1', [job.id])).rows[0]!, blocklisted: false };
      }
      if (job.node_id !== node.id) return undefined;
      const prior = (await c.query<{ failures: number; blocked: number }>('SELECT failures, blocked FROM sweep_blocklist WHERE sweep_id = $1 AND node_id = $2', [job.sweep_id, node.id]))
        .rows[0];
      const d = decideFailure({ ...job, excluded: await exclusionsOf(c, job.id) }, node, failure, { priorFailures: prior?.failures ?? 0, blocked: !!prior?.blocked }, this.opts, now);
      if (job.copy_node_id) {
        // The copy carries on as the job's only holder.
        await c.query(
          `UPDATE jobs SET node_id = copy_node_id, lease_expires_at = copy_lease_expires_at, copy_node_id = NULL, copy_lease_expires_at = NULL,
             min_vram_mb = $1, error = $2, log_tail = $3 WHERE id = $4`,
          [d.minVramMb, d.error, failure.logTail, job.id],
        );
      } else {
        await c.query(
          `UPDATE jobs SET state = $1, node_id = CASE WHEN $2 THEN node_id ELSE NULL END, lease_expires_at = NULL, error = $3, log_tail = $4,
             not_before = $5, finished_at = $6, min_vram_mb = $7 WHERE id = $8`,
          [d.final ? 'failed' : 'queued', d.final, d.error, failure.logTail, d.notBefore, d.final ? now : null, d.minVramMb, job.id],
        );
      }
      // Kept while the job can still run (queued again, or carried on by its copy); a final job's are dropped by the state trigger.
      if ((!d.final || job.copy_node_id) && d.excluded.length) {
        await c.query('INSERT INTO job_exclusions (job_id, node_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING', [job.id, d.excluded]);
      }
      await c.query(
        `INSERT INTO sweep_blocklist AS b (sweep_id, node_id, failures, blocked) VALUES ($1, $2, 1, $3)
         ON CONFLICT (sweep_id, node_id) DO UPDATE SET failures = b.failures + 1, blocked = GREATEST(b.blocked, excluded.blocked)`,
        [job.sweep_id, node.id, d.blocklist ? 1 : 0],
      );
      if (d.final) await settleSweep(c, job.sweep_id, now);
      closed = d.final ? job.sweep_id : undefined;
      const after = (await c.query<JobRow>('SELECT * FROM jobs WHERE id = $1', [job.id])).rows[0]!;
      return { job: after, blocklisted: d.blocklist };
    });
    // A failure with attempts left puts the job back in the queue (after its backoff).
    this.dry.forget();
    if (closed) await settleAfterCommit(this.pool, closed, now);
    return result;
  }

  // ------------------------------------------------------------------ outbox

  async appendEvent(subject: string, msgId: string, payload: unknown): Promise<void> {
    const now = this.now();
    // In a transaction: an event a webhook asks for writes its deliveries too.
    await inTransaction(this.pool, (c) => enqueue(c, { subject, msgId, payload }, now));
  }

  async claimEvents(limit: number, claimMs: number): Promise<ClaimedEvent[]> {
    const now = this.now();
    const { rows } = await this.pool.query<ClaimedEvent>(
      `UPDATE outbox SET claimed_until = $1
        WHERE id IN (SELECT id FROM outbox WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $2)
                      ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING id, subject, msg_id, payload`,
      [now + claimMs, now, limit],
    );
    return rows.sort((a, b) => a.id - b.id);
  }

  async markPublished(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query('UPDATE outbox SET published_at = $1, claimed_until = NULL WHERE id = ANY($2)', [this.now(), ids]);
  }

  // ------------------------------------------------------------------ leadership

  lead(duty: string): Promise<Leadership | undefined> {
    // One at a time: advisory locks are re-entrant within a session, so two concurrent tries for one duty would both win.
    const attempt = this.leading.then(() => this.tryLead(duty));
    this.leading = attempt.catch(() => undefined);
    return attempt;
  }

  private async tryLead(duty: string): Promise<Leadership | undefined> {
    // A closed engine leads nothing: it would open a new leader session that nobody ends.
    if (this.closed) throw new Error('store engine closed');
    if (this.leaderships.get(duty)?.held()) return undefined;
    const client = await this.leaderConnection();
    if (this.closed) {
      await client.end().catch(() => {});
      throw new Error('store engine closed');
    }
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [LOCK_NAMESPACE, `duty:${duty}`]);
    if (!rows[0]?.ok) return undefined;
    const leadership = new PgLeadership(duty, client);
    this.leaderships.set(duty, leadership);
    return leadership;
  }

  /** One session holds every duty this engine leads: its advisory locks end with it. */
  private leaderConnection(): Promise<pg.Client> {
    this.leaderClient ??= (async () => {
      const client = createClient({ url: this.url, applicationName: this.applicationName });
      const gone = () => {
        if (this.leaderClient === connecting) this.leaderClient = undefined;
        for (const l of this.leaderships.values()) l.endedBy(client);
      };
      client.on('error', gone);
      client.on('end', gone);
      await client.connect();
      return client;
    })();
    const connecting = this.leaderClient;
    connecting.catch(() => {
      if (this.leaderClient === connecting) this.leaderClient = undefined;
    });
    return connecting;
  }

  /**
   * A random 32-byte secret by name, the same for every replica on this
   * database (made by the first to ask; a concurrent maker's is discarded).
   */
  async sharedSecret(name: string): Promise<Buffer> {
    await this.pool.query('INSERT INTO shared_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING', [name, randomBytes(32), this.now()]);
    const row = (await this.pool.query<{ value: Buffer }>('SELECT value FROM shared_secrets WHERE name = $1', [name])).rows[0];
    if (!row) throw new Error(`shared secret ${name} vanished`);
    return row.value;
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('store engine closed');
    await this.pool.query('SELECT 1');
  }

  /** Transactions aborted by PostgreSQL and run again so far, by SQLSTATE ('40P01' deadlock, '40001' serialization); tests assert none. */
  retries(): Record<string, number> {
    return retriesOf(this.pool);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const leader = this.leaderClient;
    this.leaderClient = undefined;
    if (leader) await (await leader.catch(() => undefined))?.end().catch(() => {});
    for (const l of this.leaderships.values()) l.endedBy(undefined);
    await this.leaseNotices.close();
    await this.wakes.close();
    await this.pool.end();
  }
}

class PgLeadership implements Leadership {
  private ended = false;
  private end!: () => void;
  readonly lost = new Promise<void>((resolve) => (this.end = resolve));

  constructor(
    readonly duty: string,
    private readonly client: pg.Client,
  ) {}

  held(): boolean {
    return !this.ended;
  }

  /** Its session ended (`client` is the one that did; undefined: the engine closed). */
  endedBy(client: pg.Client | undefined): void {
    if (this.ended || (client && client !== this.client)) return;
    this.ended = true;
    this.end();
  }

  async release(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_NAMESPACE, `duty:${this.duty}`]).catch(() => {});
    this.end();
  }
}

/** Creates or updates the user and gives them a key (only its hash), inside the caller's transaction. */
async function insertKey(c: pg.PoolClient, user: NewUser, hash: string, now: number): Promise<{ id: string }> {
  await c.query(
    `INSERT INTO users (name, admin, weight, quota_images, created_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (name) DO UPDATE SET admin = excluded.admin, weight = excluded.weight, quota_images = excluded.quota_images`,
    [user.name, user.admin ? 1 : 0, user.weight, user.quotaImages, now],
  );
  const id = `key_${randomBytes(6).toString('hex')}`;
  await c.query('INSERT INTO api_keys (id, user_name, hash, created_at) VALUES ($1, $2, $3, $4)', [id, user.name, hash, now]);
  return { id };
}

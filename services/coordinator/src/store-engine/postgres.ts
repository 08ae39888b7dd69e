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
 * Not yet here (the SQLite Store has them): straggler copies, cancel/pause,
 * nodes, webhooks, live-change hooks (LISTEN/NOTIFY is the plan).
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { decideFailure, type Failure, type FailingNode, type NodeCaps } from '../placement.js';
import { DEFAULT_STORE_OPTIONS, type StoreOptions } from '../store/base.js';
import { ownKeys, refuseReport } from '../store/completion.js';
import { FINAL, jobId, newSweepId, type CompleteOutcome, type JobRow, type JobState, type NewJob, type SweepCounts, type SweepRow, type SweepStatus } from '../store/rows.js';
import type { ClaimedEvent, CompletionReport, Leadership, NewSweep, StoreEngine } from './engine.js';
import { imageEvent, sweepCreatedEvent, sweepDoneEvent, type OutboxEvent } from '../store/events.js';
import { PICK_AND_LEASE_SQL } from './postgres-pick.js';
import { createClient, createPool, inTransaction } from './postgres-pool.js';
import { LOCK_NAMESPACE, migratePostgres } from './postgres-schema.js';

type Q = Pick<pg.ClientBase, 'query'>;

/** Rows per INSERT when storing a sweep's jobs (one array parameter per column). */
const INSERT_BATCH = 5_000;

export interface PostgresEngineOptions extends Partial<StoreOptions> {
  url: string;
  /** Connections in the pool (leaderships use one more of their own). */
  poolSize?: number;
  /** Shown in pg_stat_activity; a random one by default. */
  applicationName?: string;
}

export class PostgresEngine implements StoreEngine {
  readonly kind = 'postgres';
  readonly applicationName: string;
  private readonly opts: StoreOptions;
  private readonly now: () => number;
  private leaderClient: Promise<pg.Client> | undefined;
  private readonly leaderships = new Map<string, PgLeadership>();
  private leading: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly pool: pg.Pool,
    private readonly url: string,
    applicationName: string,
    opts: Partial<StoreOptions>,
  ) {
    this.applicationName = applicationName;
    this.opts = { ...DEFAULT_STORE_OPTIONS, ...opts };
    this.now = this.opts.now;
  }

  /** Connects and migrates (once across replicas starting together). */
  static async open(o: PostgresEngineOptions): Promise<PostgresEngine> {
    const applicationName = o.applicationName ?? `nightshift-${randomBytes(4).toString('hex')}`;
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
    const { url: _url, poolSize: _poolSize, applicationName: _name, ...storeOpts } = o;
    return new PostgresEngine(pool, o.url, applicationName, storeOpts);
  }

  // ------------------------------------------------------------------ sweeps and jobs

  async createSweep(sweep: NewSweep, jobs: NewJob[], id = newSweepId()): Promise<SweepRow> {
    const now = this.now();
    const kind = sweep.kind ?? 'render';
    await inTransaction(this.pool, async (c) => {
      await c.query('INSERT INTO sweeps (id, name, spec_json, status, priority, backend, total, created_at, kind, model) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)', [
        id, sweep.name, JSON.stringify(sweep.spec), 'queued', sweep.priority, sweep.backend, jobs.length, now, kind, sweep.model,
      ]);
      for (let at = 0; at < jobs.length; at += INSERT_BATCH) await insertJobs(c, id, jobs.slice(at, at + INSERT_BATCH));
      await enqueue(c, sweepCreatedEvent({ id, name: sweep.name, kind }, jobs.length, now), now);
    });
    return (await this.getSweep(id))!;
  }

  async getSweep(id: string): Promise<SweepRow | undefined> {
    return (await this.pool.query<SweepRow>('SELECT * FROM sweeps WHERE id = $1', [id])).rows[0];
  }

  async getJob(id: string): Promise<JobRow | undefined> {
    return (await this.pool.query<JobRow>('SELECT * FROM jobs WHERE id = $1', [id])).rows[0];
  }

  async counts(sweepId: string): Promise<SweepCounts> {
    return countsOf(this.pool, sweepId);
  }

  async exclusions(jobIdValue: string): Promise<string[]> {
    return exclusionsOf(this.pool, jobIdValue);
  }

  // ------------------------------------------------------------------ leases

  async leaseNext(nodeId: string, caps: NodeCaps, leaseMs: number): Promise<JobRow | undefined> {
    if (caps.backends.length === 0) return undefined;
    const now = this.now();
    // Named, so each connection plans it once (planning cost more than running it).
    const { rows } = await this.pool.query<JobRow>({ name: 'nightshift-pick-and-lease', text: PICK_AND_LEASE_SQL, values: [nodeId, caps.backends, caps.vramMb, caps.models, now, now + leaseMs] });
    return rows[0];
  }

  async renewLeases(nodeId: string, jobIds: string[], leaseMs: number): Promise<void> {
    if (jobIds.length === 0) return;
    await this.pool.query(`UPDATE jobs SET lease_expires_at = $1 WHERE id = ANY($2) AND node_id = $3 AND state = 'leased'`, [this.now() + leaseMs, jobIds, nodeId]);
  }

  async expireLeases(): Promise<JobRow[]> {
    // Rows another replica is expiring right now are skipped, not waited for; RETURNING gives them as they were.
    const { rows } = await this.pool.query<JobRow>(
      `WITH expired AS (
         SELECT * FROM jobs WHERE state = 'leased' AND lease_expires_at < $1 ORDER BY id FOR UPDATE SKIP LOCKED
       )
       UPDATE jobs j SET state = 'queued', prev_node_id = COALESCE(j.node_id, j.prev_node_id), node_id = NULL, lease_expires_at = NULL, error = 'lease expired'
         FROM expired WHERE j.id = expired.id
       RETURNING expired.*`,
      [this.now()],
    );
    return rows.sort((a, b) => a.id.localeCompare(b.id));
  }

  async requeue(jobIds: string[], reason: string): Promise<void> {
    if (jobIds.length === 0) return;
    await this.pool.query(
      `UPDATE jobs SET state = 'queued', prev_node_id = COALESCE(node_id, prev_node_id), node_id = NULL, lease_expires_at = NULL, error = $1
        WHERE id = ANY($2) AND state = 'leased'`,
      [reason, jobIds],
    );
  }

  // ------------------------------------------------------------------ results

  async completeJob(jobIdValue: string, nodeId: string, r: CompletionReport): Promise<CompleteOutcome> {
    const now = this.now();
    return inTransaction(this.pool, async (c) => {
      const outcome: CompleteOutcome = { accepted: false, cancelOn: [] };
      const job = (await c.query<JobRow>('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', [jobIdValue])).rows[0];
      const refused = refuseReport(job, nodeId, r);
      if (refused || !job) {
        if (refused) outcome.refused = refused;
        return outcome;
      }
      const final = job.state === 'done' || job.state === 'skipped' || job.state === 'cancelled';
      const isCopy = job.copy_node_id === nodeId;
      await c.query('INSERT INTO results (job_id, node_id, skipped, accepted, copy, at) VALUES ($1, $2, $3, $4, $5, $6)', [
        job.id, nodeId, r.skipped ? 1 : 0, final ? 0 : 1, isCopy ? 1 : 0, now,
      ]);
      if (final) return outcome;
      if (job.state === 'leased') outcome.cancelOn = [job.node_id, job.copy_node_id].filter((n): n is string => !!n && n !== nodeId);
      const other = outcome.cancelOn[0] ?? job.prev_node_id;
      const own = ownKeys(job);
      await c.query(
        `UPDATE jobs SET state = $1, node_id = $2, prev_node_id = $3, image_key = $4, thumb_key = $5, render_ms = $6, finished_at = $7, lease_expires_at = NULL,
           copy_node_id = NULL, copy_lease_expires_at = NULL, error = NULL, result_model = $8 WHERE id = $9`,
        [r.skipped ? 'skipped' : 'done', nodeId, other, own.imageKey, own.thumbKey, r.renderMs, now, r.model ?? null, job.id],
      );
      await c.query('UPDATE nodes SET jobs_done = jobs_done + 1 WHERE id = $1', [nodeId]);
      // A skipped job's image may never have been announced: its renderer died between upload and report.
      if (!r.skipped || !(await announcedBefore(c, job))) {
        await c.query('UPDATE jobs SET announced = 1 WHERE id = $1', [job.id]);
        await enqueue(c, imageEvent(job, nodeId, { ...r, imageKey: own.imageKey }, now), now);
      }
      await settleSweep(c, job.sweep_id, now);
      outcome.accepted = true;
      return outcome;
    });
  }

  async failJob(jobIdValue: string, node: FailingNode, failure: Failure): Promise<{ job: JobRow; blocklisted: boolean } | undefined> {
    const now = this.now();
    return inTransaction(this.pool, async (c) => {
      const job = (await c.query<JobRow>('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', [jobIdValue])).rows[0];
      if (!job || job.state !== 'leased' || job.node_id !== node.id) return undefined;
      const prior = (await c.query<{ failures: number; blocked: number }>('SELECT failures, blocked FROM sweep_blocklist WHERE sweep_id = $1 AND node_id = $2', [job.sweep_id, node.id]))
        .rows[0];
      const d = decideFailure({ ...job, excluded: await exclusionsOf(c, job.id) }, node, failure, { priorFailures: prior?.failures ?? 0, blocked: !!prior?.blocked }, this.opts, now);
      await c.query(
        `UPDATE jobs SET state = $1, node_id = CASE WHEN $2 THEN node_id ELSE NULL END, lease_expires_at = NULL, error = $3, log_tail = $4,
           not_before = $5, finished_at = $6, min_vram_mb = $7 WHERE id = $8`,
        [d.final ? 'failed' : 'queued', d.final, d.error, failure.logTail, d.notBefore, d.final ? now : null, d.minVramMb, job.id],
      );
      // Kept while the job can still run; a final job's are dropped by the state trigger.
      if (!d.final && d.excluded.length) {
        await c.query('INSERT INTO job_exclusions (job_id, node_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING', [job.id, d.excluded]);
      }
      await c.query(
        `INSERT INTO sweep_blocklist AS b (sweep_id, node_id, failures, blocked) VALUES ($1, $2, 1, $3)
         ON CONFLICT (sweep_id, node_id) DO UPDATE SET failures = b.failures + 1, blocked = GREATEST(b.blocked, excluded.blocked)`,
        [job.sweep_id, node.id, d.blocklist ? 1 : 0],
      );
      if (d.final) await settleSweep(c, job.sweep_id, now);
      const after = (await c.query<JobRow>('SELECT * FROM jobs WHERE id = $1', [job.id])).rows[0]!;
      return { job: after, blocklisted: d.blocklist };
    });
  }

  // ------------------------------------------------------------------ outbox

  async appendEvent(subject: string, msgId: string, payload: unknown): Promise<void> {
    await enqueue(this.pool, { subject, msgId, payload }, this.now());
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
    if (this.leaderships.get(duty)?.held()) return undefined;
    const client = await this.leaderConnection();
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

  async close(): Promise<void> {
    const leader = this.leaderClient;
    this.leaderClient = undefined;
    if (leader) await (await leader.catch(() => undefined))?.end().catch(() => {});
    for (const l of this.leaderships.values()) l.endedBy(undefined);
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

// -------------------------------------------------------------------- helpers inside a transaction

async function insertJobs(c: Q, sweepId: string, jobs: NewJob[]): Promise<void> {
  // Expansion shares one params and one axes object between a prompt's seeds: each is serialised once.
  const json = memoJson();
  await c.query(
    `INSERT INTO jobs (id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state, kind, source_key, min_vram_mb)
     SELECT id, $1, idx, render_key, prompt, seed, params_json, axes_json, backend, model, 'queued', kind, source_key, min_vram_mb
       FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int[])
         AS t (id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, kind, source_key, min_vram_mb)`,
    [
      sweepId,
      jobs.map((j) => jobId(sweepId, j.index)),
      jobs.map((j) => j.index),
      jobs.map((j) => j.renderKey),
      jobs.map((j) => j.prompt),
      jobs.map((j) => j.seed),
      jobs.map((j) => json(j.params)),
      jobs.map((j) => json(j.axes)),
      jobs.map((j) => j.backend),
      jobs.map((j) => j.model),
      jobs.map((j) => j.kind ?? 'render'),
      jobs.map((j) => j.sourceKey ?? null),
      jobs.map((j) => j.minVramMb),
    ],
  );
}

async function enqueue(c: Q, e: OutboxEvent, now: number): Promise<void> {
  await c.query('INSERT INTO outbox (subject, msg_id, payload, created_at) VALUES ($1, $2, $3, $4)', [e.subject, e.msgId, JSON.stringify(e.payload), now]);
}

async function countsOf(c: Q, sweepId: string): Promise<SweepCounts> {
  const counts: SweepCounts = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };
  const { rows } = await c.query<{ state: JobState; n: number }>('SELECT state, n FROM sweep_counts WHERE sweep_id = $1', [sweepId]);
  for (const r of rows) counts[r.state === 'leased' ? 'running' : r.state] += r.n;
  return counts;
}

async function exclusionsOf(c: Q, jobIdValue: string): Promise<string[]> {
  return (await c.query<{ node_id: string }>('SELECT node_id FROM job_exclusions WHERE job_id = $1 ORDER BY node_id', [jobIdValue])).rows.map((r) => r.node_id);
}

async function announcedBefore(c: Q, job: JobRow): Promise<boolean> {
  const { rows } = await c.query(`SELECT 1 FROM jobs WHERE render_key = $1 AND state IN ('done', 'skipped') AND kind = $2 AND announced = 1 LIMIT 1`, [job.render_key, job.kind]);
  return rows.length > 0;
}

/** Moves a sweep to its final status once no job is left to run (the rule of store/sweeps.ts). */
async function settleSweep(c: Q, sweepId: string, now: number): Promise<void> {
  const open = await c.query(`SELECT 1 FROM sweep_counts WHERE sweep_id = $1 AND state IN ('queued', 'leased') AND n > 0 LIMIT 1`, [sweepId]);
  if (open.rows.length) return;
  // The row lock makes replicas settling the same sweep take turns: the second sees it final.
  const sweep = (await c.query<SweepRow>('SELECT * FROM sweeps WHERE id = $1 FOR UPDATE', [sweepId])).rows[0];
  if (!sweep || FINAL.includes(sweep.status)) return;
  const counts = await countsOf(c, sweepId);
  const status: SweepStatus = counts.done + counts.skipped === 0 && counts.failed > 0 ? 'failed' : 'done';
  await c.query('UPDATE sweeps SET status = $1, finished_at = $2 WHERE id = $3', [status, now, sweepId]);
  await enqueue(c, sweepDoneEvent(sweepId, status, counts, now), now);
}

/** JSON.stringify, once per object (by identity). */
function memoJson(): (value: object) => string {
  const seen = new WeakMap<object, string>();
  return (value) => {
    let text = seen.get(value);
    if (text === undefined) seen.set(value, (text = JSON.stringify(value)));
    return text;
  };
}

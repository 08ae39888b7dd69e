/**
 * A big sweep stored in parts on PostgreSQL (PostgresEngine.createSweep; the
 * loop is sweep-parts.ts): each part a transaction and a COPY of its own, so
 * nodes lease the first part while the rest are made. 1,000 one-second nodes
 * waited 0.6-1.1 s for their first lease when a 100,000-job sweep was one
 * transaction; the sweep then took that much more than its ideal length.
 *
 * While a replica stores a sweep's parts it has a row in `sweeps_storing`
 * naming the replica, and the jobs not yet stored count as queued (an extra
 * count in the counter shards), so no replica settles it meanwhile. Every
 * write that must see the parts, or be seen by them, takes the sweep's parts
 * lock first (lockSweepParts): a part, the sweep's cancel (a later part is
 * stored cancelled), the failure of its queued jobs for want of a capable
 * node (recorded in the row; a later part is stored failed), and the end of a
 * sweep stored short. A sweep whose parts stop short is cut to the jobs it
 * has and cancelled; one whose replica died while storing it (its name has no
 * session left) is ended so by any replica's hub tick (every 5 s), or its own next start.
 */
import type pg from 'pg';
import { FINAL, type NewJob, type SweepStatus } from '../store/rows.js';
import type { NewSweep } from './engine.js';
import { insertSweepIn, openSweepIn, replicaLive, settleAfterCommit, settleSweep, type Q } from './postgres-helpers.js';
import { ANALYZE_AFTER_JOBS, analyzeJobs, storeJobs, type Ended } from './postgres-job-insert.js';
import { inTransaction } from './postgres-pool.js';
import { cancelSweepIn, lockSweepParts } from './postgres-control.js';
import { storeInParts, take } from './sweep-parts.js';

/**
 * Jobs in each part after the first. The first is small (SWEEP_PART_JOBS) so
 * that nodes start at once; the rest are big, since a COPY streams its rows
 * without holding the event loop (SQLite's parts are small for that) and each
 * part is a transaction's round trips and triggers: in parts of 2,048, a
 * 100,000-job submit took 0.8-1.1 s against 0.56-0.86 s in one transaction.
 */
export const PG_LATER_PART_JOBS = 32_768;

/** Why a transaction that took jobs from the expansion is not run again (a generator's jobs are taken once). */
export const INTERRUPTED = 'storing the sweep was interrupted (the database aborted it: a deadlock, or a connection to run it again on) and its jobs cannot be made again: submit it again';

export class PgSweepParts {
  /** The sweeps this engine is storing now: its own rows in sweeps_storing that are not left over from a stop. */
  private readonly storing = new Set<string>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
    /** This engine's application_name, as its row in sweeps_storing names it. */
    private readonly replica: string,
    /** Runs a write that queues jobs (the dry queue forgets its answer). */
    private readonly queueing: <T>(write: Promise<T>) => Promise<T>,
    private readonly firstFillsWaitMs?: number,
  ) {}

  /** Stores `jobs` (exactly `expected` of them) as sweep `id`, part by part; resolves once all are stored. */
  async create(sweep: NewSweep, expected: number, jobs: Iterable<NewJob>, id: string): Promise<void> {
    const modelHash = sweep.modelHash ?? '';
    this.storing.add(id);
    try {
      await storeInParts(
        id,
        expected,
        jobs[Symbol.iterator](),
        {
          begin: (made, n) => this.queueing(this.begin(sweep, expected, made, n, id)),
          part: (made, n) => this.queueing(this.part(id, modelHash, made, n)),
          finish: () => this.finish(id),
          endShort: async () => {
            try {
              await this.endShort(id);
              return undefined;
            } catch (err) {
              return err;
            }
          },
        },
        sweep.partStored,
        { laterParts: PG_LATER_PART_JOBS, firstFillsWaitMs: this.firstFillsWaitMs },
      );
    } finally {
      this.storing.delete(id);
    }
    // The planner must know the new rows before picks read them for long (analyzeJobs says why).
    if (expected >= ANALYZE_AFTER_JOBS) await analyzeJobs(this.pool);
  }

  /**
   * Ends every sweep whose parts stopped short: its replica has no session
   * left (it died while storing), or it is this engine's own name and the
   * sweep is not being stored here (a stop, and a start under the same
   * name). Returns their ids; one that fails is left for the next call.
   */
  async endStoredShort(): Promise<string[]> {
    const { rows } = await this.pool.query<{ sweep_id: string }>(
      `SELECT p.sweep_id FROM sweeps_storing p
        WHERE p.replica = $1 OR NOT ${replicaLive('p.replica')}
        ORDER BY p.sweep_id`,
      [this.replica],
    );
    const ended: string[] = [];
    for (const { sweep_id: id } of rows) {
      if (this.storing.has(id)) continue;
      try {
        if (await this.endShort(id, true)) ended.push(id);
      } catch {
        // The next tick tries again.
      }
    }
    return ended;
  }

  /** The sweep counting all `expected` jobs as queued, and its first `n` (all of them, or nothing is stored). */
  private async begin(sweep: NewSweep, expected: number, made: Iterator<NewJob>, n: number, id: string): Promise<void> {
    const now = this.now();
    let taken = false;
    await inTransaction(this.pool, async (c) => {
      if (taken) throw new Error(INTERRUPTED);
      await insertSweepIn(c, sweep, id, expected, now);
      taken = true;
      const stored = await storeJobs(c, id, take(made, n), sweep.modelHash ?? '');
      if (stored < n) throw new Error(`the expansion made ${stored} jobs of the ${expected} it counted`);
      await countQueued(c, id, expected - stored);
      await c.query('INSERT INTO sweeps_storing (sweep_id, replica) VALUES ($1, $2)', [id, this.replica]);
      await openSweepIn(c, sweep, id, expected, now);
    });
  }

  /** The next part: up to `n` jobs, stored cancelled or failed if the sweep was meanwhile. How many it stored. */
  private async part(id: string, modelHash: string, made: Iterator<NewJob>, n: number): Promise<number> {
    const now = this.now();
    let taken = false;
    return inTransaction(this.pool, async (c) => {
      if (taken) throw new Error(INTERRUPTED);
      await lockSweepParts(c, id);
      const sweep = (
        await c.query<{ status: SweepStatus; replica: string | null; failed: string | null }>(
          'SELECT s.status, p.replica, p.failed FROM sweeps s LEFT JOIN sweeps_storing p ON p.sweep_id = s.id WHERE s.id = $1',
          [id],
        )
      ).rows[0];
      if (sweep?.replica !== this.replica) throw new Error('another replica ended the sweep short (this one seemed gone to it)');
      taken = true;
      // A part of a sweep cancelled, or whose queued jobs were failed, meanwhile is stored so at once: its counters go
      // straight to that state (an UPDATE after would take the counter rows out of (sweep, state) order).
      const ended: Ended | undefined = FINAL.includes(sweep.status)
        ? { state: 'cancelled', error: null, at: now }
        : sweep.failed !== null
          ? { state: 'failed', error: sweep.failed, at: now }
          : undefined;
      const stored = await storeJobs(c, id, take(made, n), modelHash, ended);
      await countQueued(c, id, -stored);
      return stored;
    });
  }

  /** Every job is stored: the row goes, and a sweep whose jobs were all failed meanwhile settles. */
  private async finish(id: string): Promise<void> {
    const now = this.now();
    const failed = await inTransaction(this.pool, async (c) => {
      await lockSweepParts(c, id);
      const row = (await c.query<{ failed: string | null }>('DELETE FROM sweeps_storing WHERE sweep_id = $1 AND replica = $2 RETURNING failed', [id, this.replica])).rows[0];
      if (!row) throw new Error('another replica ended the sweep short (this one seemed gone to it)');
      await settleSweep(c, id, now, row.failed !== null);
      return row.failed !== null;
    });
    // Its last jobs may have been failed in another replica's transaction that committed beside this one.
    if (failed) await settleAfterCommit(this.pool, id, now, true);
  }

  /**
   * Cuts the sweep to the jobs it has (its total and its count of queued
   * jobs) and cancels it. With `onlyIfStoring`, only while its row is there
   * (the hub's tick); whether it ended it.
   */
  private async endShort(id: string, onlyIfStoring = false): Promise<boolean> {
    const now = this.now();
    return inTransaction(this.pool, async (c) => {
      await lockSweepParts(c, id);
      const row = (await c.query('DELETE FROM sweeps_storing WHERE sweep_id = $1 RETURNING sweep_id', [id])).rows[0];
      if (!row && onlyIfStoring) return false;
      await cancelSweepIn(c, id, now, async () => {
        if (!row) return;
        const { rows } = await c.query<{ total: number; stored: number }>('SELECT s.total, (SELECT COUNT(*)::int FROM jobs j WHERE j.sweep_id = s.id) AS stored FROM sweeps s WHERE s.id = $1', [id]);
        const missing = rows[0] ? rows[0].total - rows[0].stored : 0;
        if (missing <= 0) return;
        await countQueued(c, id, -missing);
        await c.query('UPDATE sweeps SET total = total - $2 WHERE id = $1', [id, missing]);
      });
      return true;
    });
  }
}

/** Adds `n` (negative: takes) to the sweep's count of queued jobs, in this session's counter shard (postgres-schema.ts). */
async function countQueued(c: Q, sweepId: string, n: number): Promise<void> {
  if (n === 0) return;
  await c.query(
    `INSERT INTO sweep_count_shards AS c (sweep_id, state, shard, n) VALUES ($1, 'queued', pg_backend_pid() % 16, $2)
     ON CONFLICT (sweep_id, state, shard) DO UPDATE SET n = c.n + excluded.n`,
    [sweepId, n],
  );
}

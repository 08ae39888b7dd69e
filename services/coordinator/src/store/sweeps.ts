/**
 * Sweeps: created with their jobs, counted, settled when their last job ends,
 * cancelled, paused, reprioritised. Counts come from `sweep_counts`, which a
 * trigger keeps equal to the jobs' states (db.ts): nothing here counts jobs.
 */
import { SUBJECTS } from '@nightshift/common';
import { StoreBase } from './base.js';
import { FINAL, jobId, newSweepId, type JobRow, type JobState, type NewJob, type SweepCounts, type SweepRow, type SweepStatus } from './rows.js';
import { sweepCreatedEvent, sweepDoneEvent } from './events.js';
import { QuotaRaced, type SweepQuota } from './limits.js';

/** Floors listed at most per sweep (a sweep has one per image size; a bound against a hostile spec of many). */
export const MAX_FLOORS = 1_000;

/** A row for each state of the sweep `ref` names that still has jobs to run. */
const openJobsOf = (ref: string) => `SELECT 1 FROM sweep_counts c WHERE c.sweep_id = ${ref} AND c.state IN ('queued', 'leased') AND c.n > 0`;

/** A sweep as the store takes it (engine.ts NewSweep adds what only the engines read). */
export interface SweepToStore {
  name: string;
  spec: unknown;
  priority: number;
  backend: string;
  model: string;
  kind?: 'render' | 'upscale';
  /** The registry model's content hash and size fixed at submit (rule 4 of the pick); none for a model known by name only. */
  modelHash?: string;
  modelBytes?: number;
  /** The submitting user ('local' when absent): fair share between people orders the pick. */
  owner?: string;
  /**
   * The owner's daily image quota, checked in the sweep's own transaction
   * (under a lock per owner on PostgreSQL), so two submissions at once, through
   * one replica or two, cannot both pass it: the owner's sweeps created since
   * `since`, this one included, may hold at most `imagesPerDay` jobs.
   */
  quota?: SweepQuota;
}

export class SweepStore extends StoreBase {
  /** Images `owner` submitted since `since`: the jobs of their sweeps created since then (daily quotas). */
  imagesSubmittedSince(owner: string, since: number): number {
    return (this.q('SELECT COALESCE(SUM(total), 0) AS n FROM sweeps WHERE owner = ? AND created_at >= ?').get(owner, since) as { n: number }).n;
  }

  /**
   * Stores a validated, expanded sweep (or an upscale batch) and its jobs
   * atomically. `jobs` may be made as they are stored (expandSweepLazily), so
   * a 100,000-job sweep is never held in memory whole; a job that throws
   * while being made rolls the whole sweep back.
   */
  createSweep(sweep: SweepToStore, jobs: Iterable<NewJob>, id = newSweepId()): SweepRow {
    const now = this.now();
    const json = memoJson();
    this.transaction(() => {
      this.insertSweep(id, sweep, 0, now);
      const total = this.insertJobs(id, sweep.modelHash ?? '', jobs[Symbol.iterator](), Infinity, json);
      this.q('UPDATE sweeps SET total = ? WHERE id = ?').run(total, id);
      this.openSweep(id, sweep, total, now);
    });
    return this.getSweep(id)!;
  }

  /**
   * The first transaction of a sweep stored in parts (SqliteEngine.createSweep:
   * nodes get the first part's jobs while the rest are made): the sweep with
   * the `expected` jobs its expansion counted, every one of them counted
   * queued already (so no settle finds it empty while parts are missing; a
   * quota sees its whole size), and its first `part` jobs. A job that throws
   * here, or an expansion short of `part`, rolls it all back.
   */
  beginSweepInParts(sweep: SweepToStore, expected: number, jobs: Iterator<NewJob>, part: number, id: string, json: Json): void {
    const now = this.now();
    this.transaction(() => {
      this.insertSweep(id, sweep, expected, now);
      const n = this.insertJobs(id, sweep.modelHash ?? '', jobs, Math.min(part, expected), json);
      if (n < Math.min(part, expected)) throw new Error(`the expansion made ${n} jobs of the ${expected} it counted`);
      this.openSweep(id, sweep, expected, now);
    });
  }

  /**
   * The next part (up to `part` jobs) of a sweep stored in parts; returns how
   * many. They are queued (already counted), or cancelled at once when the
   * sweep was cancelled meanwhile (the state trigger moves their counts).
   */
  storeSweepPart(id: string, modelHash: string, jobs: Iterator<NewJob>, part: number, json: Json): number {
    return this.transaction(() => {
      const n = this.insertJobs(id, modelHash, jobs, part, json);
      if (FINAL.includes(this.getSweep(id)?.status ?? 'cancelled')) {
        this.q(`UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE sweep_id = ? AND state = 'queued'`).run(this.now(), id);
      }
      this.sweepChanged(id);
      return n;
    });
  }

  /**
   * A sweep whose parts stopped short (its expansion failed, or the
   * coordinator stopped while storing it): it counts the `stored` jobs it has
   * and is cancelled (leased ones are returned for the caller to stop; what
   * is finished is kept).
   */
  endSweepShort(id: string, stored: number): JobRow[] {
    return this.transaction(() => {
      const missing = (this.getSweep(id)?.total ?? stored) - stored;
      if (missing > 0) {
        this.q(`UPDATE sweep_counts SET n = n - ? WHERE sweep_id = ? AND state = 'queued'`).run(missing, id);
        this.q('UPDATE sweeps SET total = ? WHERE id = ?').run(stored, id);
      }
      return this.cancelSweep(id);
    });
  }

  /**
   * Sweeps whose parts stopped short: their last job (index total - 1, stored
   * last) is missing. Open ones, and cancelled ones (a cancel while parts were
   * stored, then a stop: their missing jobs still count as queued); a sweep
   * with a job still to store never settles, so none is done or failed. One
   * index probe a sweep; `stored` counts only theirs.
   */
  sweepsStoredShort(): { id: string; total: number; stored: number }[] {
    const short = this.q(
      `SELECT id, total FROM sweeps s WHERE status IN ('queued', 'running', 'paused', 'cancelled') AND total > 0
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.sweep_id = s.id AND j.idx = s.total - 1)`,
    ).all() as { id: string; total: number }[];
    return short.map((s) => ({ ...s, stored: (this.q('SELECT COUNT(*) AS n FROM jobs WHERE sweep_id = ?').get(s.id) as { n: number }).n }));
  }

  private insertSweep(id: string, sweep: SweepToStore, total: number, now: number): void {
    this.q('INSERT INTO sweeps (id, name, spec_json, status, priority, backend, total, created_at, kind, model, model_hash, model_bytes, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(id, sweep.name, JSON.stringify(sweep.spec), 'queued', sweep.priority, sweep.backend, total, now, sweep.kind ?? 'render', sweep.model, sweep.modelHash ?? '', sweep.modelBytes ?? 0, sweep.owner ?? 'local');
  }

  /** A new sweep's quota check, counters, sweep.created event and change, once its `total` is set. */
  private openSweep(id: string, sweep: SweepToStore, total: number, now: number): void {
    if (sweep.quota) {
      // In this transaction (one writer): a concurrent submission sees this sweep, or this one sees it.
      const used = this.imagesSubmittedSince(sweep.owner ?? 'local', sweep.quota.since);
      if (used > sweep.quota.imagesPerDay) throw new QuotaRaced(used - total, total, sweep.quota);
    }
    // The state trigger counts changes, not inserts: a new sweep's jobs are all queued.
    if (total) this.q(`INSERT INTO sweep_counts (sweep_id, state, n) VALUES (?, 'queued', ?)`).run(id, total);
    this.enqueueEvent(sweepCreatedEvent({ id, name: sweep.name, kind: sweep.kind ?? 'render' }, total, now));
    this.sweepChanged(id);
  }

  /**
   * Inserts up to `limit` queued jobs taken from `jobs` (never past them: an
   * iterator shared between parts is not closed), JOB_ROWS rows a statement;
   * returns how many.
   */
  private insertJobs(id: string, modelHash: string, jobs: Iterator<NewJob>, limit: number, json: Json): number {
    let n = 0;
    // Rows go in JOB_ROWS at a time, one statement each: per-row statement calls were most of a 100,000-job submit.
    const values: unknown[] = [];
    for (let next = n < limit ? jobs.next() : undefined; next && !next.done; next = n < limit ? jobs.next() : undefined) {
      const j = next.value;
      values.push(
        jobId(id, j.index), id, j.index, j.renderKey, j.prompt, j.seed, json(j.params), json(j.axes),
        j.backend, j.model, j.kind ?? 'render', j.sourceKey ?? null, j.minVramMb, modelHash,
      );
      n++;
      if (values.length === JOB_ROWS * JOB_COLUMNS) this.insertRows(values.splice(0));
    }
    // The rest one row a statement: a statement per tail size would stay prepared (cached) for good.
    for (let at = 0; at < values.length; at += JOB_COLUMNS) this.insertRows(values.slice(at, at + JOB_COLUMNS));
    return n;
  }

  /** Inserts queued jobs, JOB_COLUMNS values each, with one statement (two prepared: JOB_ROWS rows, and one). */
  private insertRows(values: unknown[]): void {
    const rows = values.length / JOB_COLUMNS;
    const row = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)`;
    this.q(
      `INSERT INTO jobs (id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state, kind, source_key, min_vram_mb, model_hash)
       VALUES ${Array.from({ length: rows }, () => row).join(', ')}`,
    ).run(...values);
  }

  getSweep(id: string): SweepRow | undefined {
    return this.q('SELECT * FROM sweeps WHERE id = ?').get(id) as SweepRow | undefined;
  }

  /** Newest first; a page of them when `page` is given; only `owner`'s when given (users see their own). */
  listSweeps(page?: { offset: number; limit: number }, owner?: string): SweepRow[] {
    if (owner !== undefined) {
      const paged = page ? ' LIMIT ? OFFSET ?' : '';
      return this.q(`SELECT * FROM sweeps WHERE owner = ? ORDER BY created_at DESC, id${paged}`).all(owner, ...(page ? [page.limit, page.offset] : [])) as SweepRow[];
    }
    if (!page) return this.q('SELECT * FROM sweeps ORDER BY created_at DESC, id').all() as SweepRow[];
    return this.q('SELECT * FROM sweeps ORDER BY created_at DESC, id LIMIT ? OFFSET ?').all(page.limit, page.offset) as SweepRow[];
  }

  sweepCount(owner?: string): number {
    if (owner !== undefined) return (this.q('SELECT COUNT(*) AS n FROM sweeps WHERE owner = ?').get(owner) as { n: number }).n;
    return (this.q('SELECT COUNT(*) AS n FROM sweeps').get() as { n: number }).n;
  }

  /** A sweep's jobs by state, from its counters (leased jobs count as running). */
  counts(sweepId: string): SweepCounts {
    const c: SweepCounts = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0, cancelled: 0 };
    const rows = this.q('SELECT state, n FROM sweep_counts WHERE sweep_id = ?').all(sweepId) as { state: JobState; n: number }[];
    for (const r of rows) c[r.state === 'leased' ? 'running' : r.state] += r.n;
    return c;
  }

  /** A job of the sweep is still queued or running (its counters, not its jobs). */
  private hasOpenJobs(sweepId: string): boolean {
    return this.q(`${openJobsOf('?')} LIMIT 1`).get(sweepId) !== undefined;
  }

  /** A job of the sweep has left the queue at least once. */
  private hasStarted(sweepId: string): boolean {
    return this.q(`SELECT 1 FROM sweep_counts WHERE sweep_id = ? AND state != 'queued' AND n > 0 LIMIT 1`).get(sweepId) !== undefined;
  }

  /** A sweep's jobs in index order, of these states if given, one page if given. */
  jobs(sweepId: string, states?: JobState[], page?: { offset: number; limit: number }): JobRow[] {
    const inStates = states?.length ? ` AND state IN (${states.map(() => '?').join(',')})` : '';
    const paged = page ? ' LIMIT ? OFFSET ?' : '';
    return this.q(`SELECT * FROM jobs WHERE sweep_id = ?${inStates} ORDER BY idx${paged}`).all(sweepId, ...(states ?? []), ...(page ? [page.limit, page.offset] : [])) as JobRow[];
  }

  /** Finished jobs' render times and finish times, newest first, for ETA (index jobs_sweep_finished). */
  recentFinishes(sweepId: string, limit = 200): { finished_at: number; render_ms: number | null; node_id: string | null }[] {
    return this.q(`SELECT finished_at, render_ms, node_id FROM jobs WHERE sweep_id = ? AND state IN ('done', 'skipped') ORDER BY finished_at DESC LIMIT ?`)
      .all(sweepId, limit) as { finished_at: number; render_ms: number | null; node_id: string | null }[];
  }

  /** The distinct VRAM floors of a sweep's queued jobs, smallest first, with its backend: one index probe a floor (jobs_vram), nothing counted. */
  queuedFloors(sweepId: string): { backend: string; min_vram_mb: number }[] {
    return this.q(
      `WITH RECURSIVE floors(v, k) AS (
         SELECT MIN(min_vram_mb), 0 FROM jobs WHERE sweep_id = @sweep AND state = 'queued'
         UNION ALL
         SELECT (SELECT MIN(q.min_vram_mb) FROM jobs q WHERE q.sweep_id = @sweep AND q.state = 'queued' AND q.min_vram_mb > f.v), f.k + 1
           FROM floors f WHERE f.v IS NOT NULL AND f.k < ${MAX_FLOORS})
       SELECT s.backend, f.v AS min_vram_mb FROM floors f, sweeps s WHERE f.v IS NOT NULL AND s.id = @sweep ORDER BY f.v`,
    ).all({ sweep: sweepId }) as { backend: string; min_vram_mb: number }[];
  }

  blockedNodes(sweepId: string): string[] {
    return (this.q('SELECT node_id FROM sweep_blocklist WHERE sweep_id = ? AND blocked = 1').all(sweepId) as { node_id: string }[]).map((r) => r.node_id);
  }

  /**
   * A sweep's queued jobs grouped by what they need (for `explain`). A job's
   * backend is its sweep's, so the groups are VRAM floors: read from index
   * jobs_vram alone, never the job rows. `floors`: count only these (a count
   * reads every queued entry of its floor).
   */
  queuedRequirements(sweepId: string, floors?: readonly number[]): { backend: string; min_vram_mb: number; n: number }[] {
    const only = floors ? ' AND min_vram_mb IN (SELECT value FROM json_each(@floors))' : '';
    return this.q(
      `SELECT s.backend, g.min_vram_mb, g.n
         FROM (SELECT min_vram_mb, COUNT(*) AS n FROM jobs WHERE sweep_id = @sweep AND state = 'queued'${only} GROUP BY min_vram_mb) g, sweeps s
        WHERE s.id = @sweep`,
    ).all({ sweep: sweepId, ...(floors ? { floors: JSON.stringify(floors) } : {}) }) as {
      backend: string;
      min_vram_mb: number;
      n: number;
    }[];
  }

  /** Fails a sweep's remaining queued jobs with a reason (no node can run them). */
  failQueued(sweepId: string, reason: string): number {
    let n = 0;
    this.transaction(() => {
      n = this.q(`UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE sweep_id = ? AND state = 'queued'`).run(reason, this.now(), sweepId).changes;
      this.sweepChanged(sweepId);
      this.settleSweep(sweepId, true);
    });
    return n;
  }

  /** Settles the sweeps with jobs, none of them open, that are not final (engine.ts's settleIdleSweeps). */
  settleIdleSweeps(): number {
    let settled = 0;
    this.transaction(() => {
      const idle = this.q(
        `SELECT id FROM sweeps s WHERE status IN ('queued', 'running', 'paused') AND total > 0
            AND NOT EXISTS (${openJobsOf('s.id')})
          ORDER BY id`,
      ).all() as { id: string }[];
      for (const { id } of idle) this.settleSweep(id);
      settled = idle.length;
    });
    return settled;
  }

  /** Moves a sweep to its final status once no job is left to run. */
  protected settleSweep(sweepId: string, noCapableNode = false): void {
    // Cheap check first (the sweep's counters): this runs on every result.
    if (this.hasOpenJobs(sweepId)) return;
    const sweep = this.getSweep(sweepId);
    if (!sweep || FINAL.includes(sweep.status)) return;
    const c = this.counts(sweepId);
    const status: SweepStatus = noCapableNode || (c.done + c.skipped === 0 && c.failed > 0) ? 'failed' : 'done';
    const now = this.now();
    this.q('UPDATE sweeps SET status = ?, finished_at = ? WHERE id = ?').run(status, now, sweepId);
    this.sweepChanged(sweepId);
    this.enqueueEvent(sweepDoneEvent(sweepId, status, c, now));
  }

  /** Cancels a sweep: queued jobs are cancelled, leased ones returned for the caller to stop. */
  cancelSweep(sweepId: string): JobRow[] {
    let running: JobRow[] = [];
    this.transaction(() => {
      const sweep = this.getSweep(sweepId);
      if (!sweep || FINAL.includes(sweep.status)) return;
      running = this.jobs(sweepId, ['leased']);
      const now = this.now();
      this.q(`UPDATE jobs SET state = 'cancelled', finished_at = ?, lease_expires_at = NULL, copy_node_id = NULL, copy_lease_expires_at = NULL WHERE sweep_id = ? AND state IN ('queued', 'leased')`)
        .run(now, sweepId);
      this.q(`UPDATE sweeps SET status = 'cancelled', finished_at = ? WHERE id = ?`).run(now, sweepId);
      this.enqueue(SUBJECTS.sweepCancelled, `sweep.cancelled.${sweepId}`, { sweepId, cancelledAt: new Date(now).toISOString() });
      this.sweepChanged(sweepId);
    });
    return running;
  }

  /** Pause stops new dispatch (running jobs finish); resume restarts it. */
  setPaused(sweepId: string, paused: boolean): boolean {
    return this.transaction(() => {
      const sweep = this.getSweep(sweepId);
      if (!sweep || FINAL.includes(sweep.status)) return false;
      if (paused) {
        const ok = this.q(`UPDATE sweeps SET status = 'paused' WHERE id = ? AND status IN ('queued', 'running')`).run(sweepId).changes === 1 || sweep.status === 'paused';
        if (ok) this.sweepChanged(sweepId);
        return ok;
      }
      const started = this.hasStarted(sweepId);
      this.q(`UPDATE sweeps SET status = ? WHERE id = ? AND status = 'paused'`).run(started ? 'running' : 'queued', sweepId);
      this.sweepChanged(sweepId);
      return true;
    });
  }

  setPriority(sweepId: string, priority: number): boolean {
    return this.write(() => {
      const ok = this.q('UPDATE sweeps SET priority = ? WHERE id = ?').run(priority, sweepId).changes === 1;
      if (ok) this.sweepChanged(sweepId);
      return ok;
    });
  }
}

/** Values bound per job row, and rows per INSERT statement (well under SQLite's 32,766 bound variables). */
const JOB_COLUMNS = 14;
const JOB_ROWS = 128;

/** JSON.stringify, once per object (by identity): expansion shares one params and one axes object between a prompt's seeds. */
export type Json = (value: object) => string;
export function memoJson(): Json {
  const seen = new WeakMap<object, string>();
  return (value) => {
    let text = seen.get(value);
    if (text === undefined) seen.set(value, (text = JSON.stringify(value)));
    return text;
  };
}

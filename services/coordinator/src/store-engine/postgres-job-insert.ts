/**
 * Storing a sweep's jobs on PostgreSQL, fast enough for a 100,000-job sweep
 * to be accepted in under a second (issue 12; bench/submit-breakdown-pg.ts
 * says where the time goes). One COPY ... FROM STDIN per sweep, its rows
 * streamed as the expansion makes them (a sweep is never in memory whole):
 * the database parses and stores a chunk while the coordinator expands and
 * encodes the next, and COPY stores rows in pages at a time with no array
 * parameters to parse. 100,000 jobs: ~500 ms against ~760 ms as batches of
 * INSERT ... SELECT FROM unnest($arrays) (measured in one process, 1.2M rows
 * stored, 2 cores). COPY fires the same statement-level triggers (counters,
 * wake-ups, the sweep's existence) once, over all of the sweep's rows.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { jobId, type NewJob } from '../store/rows.js';
import { inTransaction } from './postgres-pool.js';

/** A sweep of this many jobs or more refreshes the planner's statistics of `jobs` once stored. */
export const ANALYZE_AFTER_JOBS = 10_000;
/** Rows per chunk written to the COPY (~200 kB: few writes, little held while the database catches up). */
const CHUNK_ROWS = 1_000;

const COPY_COLUMNS = 'id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state, kind, source_key, min_vram_mb, model_hash';
const COPY_JOBS_SQL = `COPY jobs (${COPY_COLUMNS}) FROM STDIN`;
const COPY_ENDED_JOBS_SQL = `COPY jobs (${COPY_COLUMNS}, error, finished_at) FROM STDIN`;

/** Jobs stored already ended: a part of a sweep cancelled, or whose queued jobs were failed, while it was stored (postgres-sweep-parts.ts). */
export interface Ended {
  state: 'cancelled' | 'failed';
  error: string | null;
  at: number;
}

/**
 * Stores `jobs` (as the expansion makes them) as queued jobs of `sweepId`
 * (or `ended` so), in the transaction of `c` (a client of its own: COPY
 * holds it until the last row). Returns how many there were. A job that
 * cannot be encoded, or an expansion that throws, ends the COPY with the
 * error (CopyFail) and rejects.
 */
export async function storeJobs(c: Pick<pg.ClientBase, 'query'>, sweepId: string, jobs: Iterable<NewJob>, modelHash: string, ended?: Ended): Promise<number> {
  let total = 0;
  const counted = function* (): Generator<NewJob> {
    for (const job of jobs) {
      total++;
      yield job;
    }
  };
  await pipeline(Readable.from(copyChunks(sweepId, counted(), modelHash, ended)), c.query(copyFrom(ended ? COPY_ENDED_JOBS_SQL : COPY_JOBS_SQL)));
  return total;
}

/** The COPY's text rows for `jobs`, CHUNK_ROWS to a string (with error and finished_at last when `ended`). */
export function* copyChunks(sweepId: string, jobs: Iterable<NewJob>, modelHash: string, ended?: Ended): Generator<string> {
  const fields = fieldCache();
  // Every row's sweep, state and model hash (and end) are the same: encoded once.
  const sweepField = `\t${copyField(sweepId)}\t`;
  const state = `\t${ended?.state ?? 'queued'}\t`;
  const tail = `\t${copyField(modelHash)}${ended ? `\t${ended.error === null ? '\\N' : copyField(ended.error)}\t${int(ended.at)}` : ''}\n`;
  let rows: string[] = [];
  for (const j of jobs) {
    const source = j.sourceKey ?? null;
    rows.push(
      copyField(jobId(sweepId, j.index)) + sweepField + int(j.index) + '\t' + copyField(j.renderKey) + '\t' + copyField(j.prompt) + '\t' + int(j.seed) + '\t' +
        fields.json(j.params) + '\t' + fields.json(j.axes) + '\t' + fields.repeated(j.backend) + '\t' + fields.repeated(j.model) + state +
        fields.repeated(j.kind ?? 'render') + '\t' + (source === null ? '\\N' : copyField(source)) + '\t' + int(j.minVramMb) + tail,
    );
    if (rows.length === CHUNK_ROWS) {
      yield rows.join('');
      rows = [];
    }
  }
  if (rows.length) yield rows.join('');
}

/** A field of COPY's text format: backslash, newline, carriage return and tab escaped (NULL is written \N apart). */
export function copyField(value: string): string {
  return NEEDS_ESCAPE.test(value) ? value.replace(ESCAPED, (ch) => ESCAPES[ch]!) : value;
}
const NEEDS_ESCAPE = /[\\\n\r\t]/;
const ESCAPED = /[\\\n\r\t]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** An integer field; anything else is refused (it would not be stored as written). */
function int(value: number): string {
  if (!Number.isSafeInteger(value)) throw new Error(`not an integer for an integer column: ${String(value)}`);
  return String(value);
}

/**
 * Fields encoded once where a sweep repeats them: expansion shares one params
 * and one axes object between a prompt's seeds (serialised once, by identity),
 * and backend, model and kind are the same for most jobs.
 */
function fieldCache(): { json(value: object): string; repeated(value: string): string } {
  const byObject = new WeakMap<object, string>();
  const byValue = new Map<string, string>();
  return {
    json(value) {
      let field = byObject.get(value);
      if (field === undefined) byObject.set(value, (field = copyField(JSON.stringify(value))));
      return field;
    },
    repeated(value) {
      let field = byValue.get(value);
      if (field === undefined) {
        field = copyField(value);
        // A few distinct values are expected; a sweep of all-different ones does not grow this without bound.
        if (byValue.size < 64) byValue.set(value, field);
      }
      return field;
    },
  };
}

/**
 * The statistics target of the ANALYZE after a big sweep: it samples 300 rows
 * per unit (9,000 here against 30,000 at PostgreSQL's default of 100). At 10
 * the pick came out 15-25 % slower (lease p50 0.51-0.57 ms against 0.44);
 * at 30 it is as fast as after a full ANALYZE (bench/analyze-pick-pg.ts).
 */
const ANALYZE_TARGET = 30;

/**
 * Refreshes the planner's statistics of what the pick reads of `jobs`. Without
 * them after a big sweep the planner walked the new rows on every pick until
 * autovacuum's next analyze: at 1M queued over 10 sweeps, lease p50 77 ms
 * unanalyzed against 0.45 ms after this one and 0.44 ms after a full ANALYZE
 * (bench/analyze-pick-pg.ts). This one is cheap enough to await before the
 * sweep's 201: only the columns the pick filters and orders on (the table's
 * row count comes with any ANALYZE), from a smaller sample: 40 ms a sweep on
 * the way to 1M rows on a 2-core box, against 330 ms for a full `ANALYZE
 * jobs`, whose wide text columns and 30,000-row sample made it a fifth of the
 * submit. Autovacuum still analyzes the whole table at the default target
 * afterwards: a partial ANALYZE does not reset its count of changes.
 * copy_node_id too: without its statistics the planner took `copy_node_id IS
 * NOT NULL` for a third of the table and read every job on each lease tick
 * to end lapsed straggler copies (EXPIRE_COPIES_SQL, postgres.ts: 12 ms a
 * tick at 100,000 jobs on a quiet box, 61 ms under a 1,000-node load) until
 * autovacuum's next analyze.
 */
export async function analyzeJobs(pool: pg.Pool, target = ANALYZE_TARGET): Promise<void> {
  await inTransaction(pool, async (c) => {
    await c.query(`SELECT set_config('default_statistics_target', $1, true)`, [String(target)]);
    await c.query('ANALYZE jobs (sweep_id, state, idx, min_vram_mb, not_before, copy_node_id)');
  });
}

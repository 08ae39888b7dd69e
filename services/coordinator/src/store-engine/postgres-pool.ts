/**
 * node-postgres plumbing for the PostgreSQL engine: a pool whose BIGINT and
 * NUMERIC values come back as numbers (times in ms and counts fit in 2^53,
 * and rows must match SQLite's), and transactions retried on deadlock or
 * serialization failure (PostgreSQL aborts one side; running it again is
 * the documented answer).
 */
import { createHash } from 'node:crypto';
import pg from 'pg';

const INT8 = 20;
const NUMERIC = 1700;

const numberTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 || oid === NUMERIC ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export interface PoolOptions {
  url: string;
  /** Names this engine's sessions in pg_stat_activity (tests end them by it). */
  applicationName: string;
  max?: number;
}

/** The longest one statement may run (a 100,000-job insert batch takes well under a second). */
const STATEMENT_TIMEOUT_MS = 60_000;

export function createPool(opts: PoolOptions): pg.Pool {
  // A query never hangs a replica for good (a database failing over, a half-open connection): it fails and is retried by its caller.
  const pool = new pg.Pool({ connectionString: opts.url, application_name: opts.applicationName, max: opts.max ?? 10, types: numberTypes, keepAlive: true, statement_timeout: STATEMENT_TIMEOUT_MS, query_timeout: STATEMENT_TIMEOUT_MS + 5_000, connectionTimeoutMillis: 10_000 });
  // An idle client whose session ended (server restart, terminated backend) is dropped by the pool; the next query reconnects.
  pool.on('error', () => {});
  pool.on('connect', nameStatements);
  againOnStalePlan(pool);
  return pool;
}

/**
 * Pages (a LIMIT or OFFSET given as a parameter: listings, the gallery) stay
 * unnamed: once prepared, PostgreSQL may plan them for any limit alike (a
 * generic plan), where each call's own plan knows how few rows it wants.
 */
const PAGED = /\b(?:LIMIT|OFFSET)\s+\$\d/i;

/** A prepared statement's name: its text's hash (one text, one name; texts are few and fixed). */
const statementName = (text: string) => `ns-${createHash('sha1').update(text).digest('base64url').slice(0, 20)}`;

/**
 * Names every parameterized statement a pooled connection runs, so that it
 * parses and plans each once instead of on every call. Measured with
 * bench/scale.ts at 1,000 nodes on PostgreSQL (2-core box, its CPU the
 * limit): instant renders 395–410 → 418–468 jobs/s; 1 s renders 0.43–0.44 →
 * 0.47–0.51 of ideal (one run in six 0.36). The pick was named already.
 */
function nameStatements(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    const [text, values] = args;
    if (typeof text === 'string' && Array.isArray(values) && values.length > 0 && !PAGED.test(text)) return query({ name: statementName(text), text, values }, ...args.slice(2));
    return query(...args);
  }) as typeof client.query;
}

/**
 * A prepared statement whose star columns changed under it: a newer replica's
 * migration added a column. PostgreSQL refuses to run it on that connection
 * again ("cached plan must not change result type"); on another connection,
 * or a new one, the same text runs.
 */
export function isStalePlan(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; routine?: unknown } | null;
  // The routine, not the message, whatever language the server speaks (lc_messages); 26000: a statement the connection lost.
  if (e?.code === '26000') return true;
  return e?.code === '0A000' && (e.routine === 'RevalidateCachedQuery' || (typeof e.message === 'string' && e.message.includes('cached plan must not change result type')));
}

/** Stale plans met by the pool's own queries (pool.query drops the connection a query failed on). */
const STALE_TRIES = 64;

/** pool.query tries a statement again, on another connection, when the one it ran on held a stale plan of it. */
function againOnStalePlan(pool: pg.Pool): void {
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  pool.query = (async (...args: unknown[]) => {
    if (typeof args[args.length - 1] === 'function') return query(...args);
    for (let tries = 1; ; tries++) {
      try {
        return await query(...args);
      } catch (err) {
        if (!isStalePlan(err) || tries >= STALE_TRIES) throw err;
      }
    }
  }) as unknown as typeof pool.query;
}

export function createClient(opts: PoolOptions): pg.Client {
  return new pg.Client({ connectionString: opts.url, application_name: opts.applicationName, types: numberTypes });
}

const RETRYABLE = new Set(['40P01', '40001']);

/**
 * A failure of the database rather than of the call, worth trying again:
 * connection failures (SQLSTATE 08…), too many connections (53300), a
 * shutdown or crash (57P01-03), deadlock and serialization (40P01, 40001),
 * the socket's own errors, and node-postgres's errors without a SQLSTATE
 * (the session ended under the query, its COMMIT's fate unknown, or it timed out).
 */
export function isTransientPgError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (/^(08|53300$|57P0[123]$)/.test(code) || RETRYABLE.has(code)) return true;
    if (/^E(CONNREFUSED|CONNRESET|CONNABORTED|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN)$|^ENOTFOUND$/.test(code)) return true;
  }
  return err instanceof Error && /Connection terminated|terminating connection|Query read timeout|timeout exceeded when trying to connect/i.test(err.message);
}

/**
 * An error of a call's own values, not of the database: a data exception
 * (SQLSTATE class 22: a NUL byte, a number out of range) or a constraint
 * violated (23). A batch that met one is run again a call at a time
 * (turn-batches.ts); any other error (a timeout, a read-only server) would
 * fail each call alike.
 */
export const notTheDatabases = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23]/.test(code);
};

/** Pool → transactions retried so far, by SQLSTATE (a deadlock retried is a lock-order bug to find, not a cost to hide). */
const retried = new WeakMap<pg.Pool, Map<string, number>>();

/** How many transactions on `pool` were aborted and run again, by SQLSTATE ('40P01' deadlock, '40001' serialization). */
export function retriesOf(pool: pg.Pool): Record<string, number> {
  return Object.fromEntries(retried.get(pool) ?? []);
}

/** Runs `work` in one transaction, again (up to 5 times) when PostgreSQL aborted it for a deadlock or serialization failure. */
export async function inTransaction<T>(pool: pg.Pool, work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  let stale = 0;
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => (broken = e instanceof Error ? e : new Error(String(e))));
      // A connection holding a stale plan (or one that lost a prepared statement node-postgres still counts on: a
      // value that failed to serialize, say) is dropped, and the transaction runs again on another (not counted as an attempt).
      if (isStalePlan(err) && stale++ < STALE_TRIES) {
        broken = err as Error;
        attempt--;
        continue;
      }
      const code = (err as { code?: unknown }).code;
      if (attempt >= 5 || typeof code !== 'string' || !RETRYABLE.has(code)) throw err;
      const counts = retried.get(pool) ?? new Map<string, number>();
      counts.set(code, (counts.get(code) ?? 0) + 1);
      retried.set(pool, counts);
    } finally {
      client.release(broken);
    }
  }
}

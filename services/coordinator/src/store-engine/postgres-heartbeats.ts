/**
 * Node heartbeats on PostgreSQL, a turn's worth in one statement
 * (turn-batches.ts). At 1,000 nodes a heartbeat a second each was a
 * statement, and a run of every statement trigger on jobs, a second a node.
 *
 * Nodes are touched in one statement and leases renewed in another, each
 * locking its rows in id order, as the completions' batch takes them
 * (postgres-completions.ts): batches on one replica, or on two, take turns
 * instead of deadlocking. The renewal changes no state or holder, so the
 * rows read back are as a heartbeat one at a time would have read them.
 */
import type pg from 'pg';
import { LAST_SEEN_PRECISION_MS, notTheNodesJobs } from '../store/nodes.js';
import { renewDueBefore } from '../store/jobs.js';
import type { JobRow } from '../store/rows.js';
import { LEASED } from './postgres-helpers.js';
import { inTransaction, notTheDatabases } from './postgres-pool.js';
import { TurnBatches } from './turn-batches.js';

export interface Heartbeat {
  nodeId: string;
  running: string[];
  leaseMs: number;
}

/** $1 now, $2 node ids, $3 the last_seen older than which a node is touched (10 s precision): in id order. */
const SEEN_SQL = `
WITH due AS (SELECT id FROM nodes WHERE id = ANY($2::text[]) AND last_seen <= $3 ORDER BY id FOR UPDATE)
UPDATE nodes SET last_seen = $1 FROM due WHERE nodes.id = due.id`;

/** Renewals that are due ($4, renewDueBefore): the holder's lease, and the copy's. */
const DUE_HOLDER = `(locked.node_id = ANY(held.nodes) AND locked.lease_expires_at <= $4)`;
const DUE_COPY = `(locked.copy_node_id = ANY(held.nodes) AND locked.copy_lease_expires_at <= $4)`;

/**
 * $1 lease expiry, $2/$3 (job, node) pairs the nodes say they run, $4 the
 * expiry up to which a lease is renewed (store/jobs.ts's renewDueBefore:
 * a row whose lease and copy were both renewed a moment ago is not locked,
 * and a lease renewed a moment ago is not rewritten). The leased
 * jobs named are locked in id order by \`locked\` before the update touches
 * them (a row it updates is one \`locked\` returned, as it is once locked);
 * the rows named are read back as the statement's snapshot has them. Only
 * leased rows are locked (a queued one locked here would be passed over by
 * a pick), tested as \`LEASED\` (postgres-helpers.ts) so the planner reads
 * them by primary key and does not walk every leased job (jobs_holder) when
 * its statistics say few are leased.
 */
const RENEW_SQL = `
WITH held AS (SELECT p.job, array_agg(p.node) AS nodes FROM unnest($2::text[], $3::text[]) AS p (job, node) GROUP BY p.job),
     locked AS (SELECT j.id, j.state, j.node_id, j.copy_node_id, j.lease_expires_at, j.copy_lease_expires_at FROM jobs j
                 WHERE j.id = ANY($2::text[]) AND ${LEASED('j')} AND (j.lease_expires_at <= $4 OR j.copy_lease_expires_at <= $4) ORDER BY j.id FOR UPDATE),
     renewed AS (
       UPDATE jobs SET lease_expires_at = CASE WHEN ${DUE_HOLDER} THEN $1 ELSE jobs.lease_expires_at END,
                       copy_lease_expires_at = CASE WHEN ${DUE_COPY} THEN $1 ELSE jobs.copy_lease_expires_at END
         FROM held JOIN locked ON locked.id = held.job
        WHERE jobs.id = locked.id AND locked.state = 'leased' AND (${DUE_HOLDER} OR ${DUE_COPY}))
SELECT j.id, j.state, j.node_id, j.copy_node_id FROM jobs j WHERE j.id = ANY($2::text[])`;

export class PgHeartbeats {
  private readonly batches = new TurnBatches<Heartbeat, string[]>((items) => this.beatAll(items), { alone: notTheDatabases });

  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  /** What of `running` is no longer the node's own (store/nodes.ts's rule), once its leases are renewed and it is seen. */
  beat(h: Heartbeat): Promise<string[]> {
    return this.batches.add(h);
  }

  private async beatAll(items: readonly Heartbeat[]): Promise<string[][]> {
    const now = this.now();
    // Two statements, each its own transaction: a node's row is never held while jobs are waited for.
    await this.pool.query(SEEN_SQL, [now, [...new Set(items.map((h) => h.nodeId))], now - LAST_SEEN_PRECISION_MS]);
    const out: string[][] = [];
    // One statement per lease length: one in practice (the hub's).
    const byLease = new Map<number, number[]>();
    items.forEach((h, i) => {
      const at = byLease.get(h.leaseMs);
      if (at) at.push(i);
      else byLease.set(h.leaseMs, [i]);
    });
    for (const [leaseMs, at] of byLease) {
      const pairs = at.flatMap((i) => items[i]!.running.map((job) => [job, items[i]!.nodeId] as const));
      const rows = await this.renew(pairs, now, leaseMs);
      for (const i of at) out[i] = notTheNodesJobs(items[i]!.running, rows, items[i]!.nodeId);
    }
    return out;
  }

  /** The leases of `jobIds` that are `nodeId`'s renewed where due, as a heartbeat renews them (StoreEngine.renewLeases), not batched. */
  async renewFor(nodeId: string, jobIds: string[], leaseMs: number): Promise<void> {
    if (jobIds.length > 0) await this.renew(jobIds.map((job) => [job, nodeId] as const), this.now(), leaseMs);
  }

  /** RENEW_SQL over (job, node) pairs; the named rows as they were read. */
  private async renew(pairs: (readonly [string, string])[], now: number, leaseMs: number): Promise<Pick<JobRow, 'id' | 'state' | 'node_id' | 'copy_node_id'>[]> {
    // In a transaction of its own only to be run again should it ever be chosen to end a deadlock.
    const { rows } = await inTransaction(this.pool, (c) =>
      c.query<Pick<JobRow, 'id' | 'state' | 'node_id' | 'copy_node_id'>>(RENEW_SQL, [now + leaseMs, pairs.map(([job]) => job), pairs.map(([, node]) => node), renewDueBefore(now + leaseMs, leaseMs)]),
    );
    return rows;
  }
}

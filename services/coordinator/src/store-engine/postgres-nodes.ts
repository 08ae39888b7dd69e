/**
 * The PostgreSQL engine's nodes and node tokens (store/nodes.ts on SQLite).
 * A node row names its replica (the application_name of the engine it
 * registered through), so a replica starting marks offline only the nodes
 * whose replica has no session left: nodes connected to the replicas still
 * running stay online.
 */
import type pg from 'pg';
import { SUBJECTS } from '@nightshift/common';
import { LAST_SEEN_PRECISION_MS } from '../store/nodes.js';
import type { JobRow, NodeRow } from '../store/rows.js';
import type { NodeEngine } from './engine-faces.js';
import { enqueue, releaseNodeIn, replicaLive, type Q } from './postgres-helpers.js';
import { inTransaction } from './postgres-pool.js';
import { CHANGES_CHANNEL } from './postgres-schema.js';

/** Live clients hear of a node's new status at commit (engine.ts's subscribeChanges). */
function nodeChanged(c: Q, nodeId: string, status: string): Promise<unknown> {
  return c.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, `node:${status}:${nodeId}`]);
}

/** The nodes columns of SQLite's NodeRow (the replica is this engine's own). */
const NODE_COLUMNS = 'id, name, capabilities_json, status, last_seen, connected_at, jobs_done';

export class PgNodes implements NodeEngine {
  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
    /** This engine's application_name: its sessions in pg_stat_activity. */
    private readonly replica: string,
  ) {}

  async upsertNode(id: string, name: string, capabilities: unknown): Promise<void> {
    const now = this.now();
    await inTransaction(this.pool, async (c) => {
      await c.query(
        `INSERT INTO nodes (id, name, capabilities_json, status, last_seen, connected_at, replica) VALUES ($1, $2, $3, 'online', $4, $4, $5)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, capabilities_json = excluded.capabilities_json, status = 'online',
           last_seen = excluded.last_seen, connected_at = excluded.connected_at, replica = excluded.replica`,
        [id, name, JSON.stringify(capabilities), now, this.replica],
      );
      await nodeChanged(c, id, 'online');
    });
  }

  /** Rewrites last_seen only once it is `precisionMs` old (store/nodes.ts's touchNode); whether it wrote. */
  async touchNode(id: string, precisionMs = LAST_SEEN_PRECISION_MS): Promise<boolean> {
    const now = this.now();
    return (await this.pool.query('UPDATE nodes SET last_seen = $1 WHERE id = $2 AND last_seen <= $3', [now, id, now - precisionMs])).rowCount === 1;
  }

  async setNodeStatus(id: string, status: 'online' | 'offline'): Promise<void> {
    const now = this.now();
    await inTransaction(this.pool, async (c) => {
      await c.query('UPDATE nodes SET status = $1, last_seen = $2 WHERE id = $3', [status, now, id]);
      await nodeChanged(c, id, status);
    });
  }

  async listNodes(): Promise<NodeRow[]> {
    return (await this.pool.query<NodeRow>(`SELECT ${NODE_COLUMNS} FROM nodes ORDER BY name COLLATE "C", id COLLATE "C"`)).rows;
  }

  /** At a replica's start: its own nodes (it has none connected yet) and those of replicas with no session left go offline. */
  async markAllNodesOffline(): Promise<void> {
    await this.pool.query(
      `UPDATE nodes SET status = 'offline'
        WHERE status = 'online'
          AND (replica = $1 OR NOT ${replicaLive('replica')})`,
      [this.replica],
    );
  }

  async nodeTokenBinding(nodeId: string): Promise<string | undefined> {
    return (await this.pool.query<{ token_fingerprint: string }>('SELECT token_fingerprint FROM node_tokens WHERE node_id = $1', [nodeId])).rows[0]?.token_fingerprint;
  }

  async bindNodeToken(nodeId: string, tokenFingerprint: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO node_tokens (node_id, token_fingerprint, bound_at) VALUES ($1, $2, $3)
       ON CONFLICT (node_id) DO UPDATE SET token_fingerprint = excluded.token_fingerprint, bound_at = excluded.bound_at`,
      [nodeId, tokenFingerprint, this.now()],
    );
  }

  async recordNodeEvent(subject: string, nodeId: string, extra: Record<string, unknown>): Promise<void> {
    const now = this.now();
    // In a transaction: node.down writes its webhook deliveries with it.
    await inTransaction(this.pool, (c) => recordNodeEventIn(c, subject, nodeId, extra, now));
  }

  /** A node stopped answering: offline, what it held requeued (or handed to copies), node.down announced; its leases as they were, by id. */
  async markNodeDown(nodeId: string, why: string): Promise<JobRow[]> {
    return inTransaction(this.pool, (c) => this.markNodeDownIn(c, nodeId, why));
  }

  private async markNodeDownIn(c: Q, nodeId: string, why: string): Promise<JobRow[]> {
    const now = this.now();
    await c.query(`UPDATE nodes SET status = 'offline', last_seen = $1 WHERE id = $2`, [now, nodeId]);
    const released = await releaseNodeIn(c, nodeId, `node ${nodeId} down: ${why}`);
    await recordNodeEventIn(c, SUBJECTS.nodeDown, nodeId, { why, requeued: released.length }, now);
    await nodeChanged(c, nodeId, 'down');
    return released;
  }

  /**
   * markNodeDown, unless the node registered through another live replica
   * since (its row names that replica): then it is that replica's, and
   * nothing changes. The row is locked first, so a register on the other
   * replica waits for this and then finds what was released.
   */
  async markNodeDownIfOurs(nodeId: string, why: string): Promise<JobRow[] | undefined> {
    return inTransaction(this.pool, async (c) => {
      if (await this.servedElsewhere(c, nodeId)) return undefined;
      return this.markNodeDownIn(c, nodeId, why);
    });
  }

  /** setNodeStatus(offline) under markNodeDownIfOurs's rule; whether it was marked. */
  async markNodeOfflineIfOurs(nodeId: string): Promise<boolean> {
    const now = this.now();
    return inTransaction(this.pool, async (c) => {
      if (await this.servedElsewhere(c, nodeId)) return false;
      await c.query(`UPDATE nodes SET status = 'offline', last_seen = $1 WHERE id = $2`, [now, nodeId]);
      await nodeChanged(c, nodeId, 'offline');
      return true;
    });
  }

  /** Whether the node's row (locked) names another replica that still has a session. */
  private async servedElsewhere(c: Q, nodeId: string): Promise<boolean> {
    const row = (
      await c.query<{ elsewhere: boolean }>(
        `SELECT replica <> $2 AND ${replicaLive('n.replica')} AS elsewhere
           FROM nodes n WHERE n.id = $1 FOR UPDATE`,
        [nodeId, this.replica],
      )
    ).rows[0];
    return row?.elsewhere === true;
  }
}

function recordNodeEventIn(c: Q, subject: string, nodeId: string, extra: Record<string, unknown>, now: number): Promise<void> {
  return enqueue(c, { subject, msgId: `${subject}.${nodeId}.${now}`, payload: { nodeId, at: new Date(now).toISOString(), ...extra } }, now);
}

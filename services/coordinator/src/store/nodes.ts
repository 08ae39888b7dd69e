/** Nodes: registered, seen, online or offline, marked down (their work requeued), announced in the outbox. */
import { SUBJECTS } from '@nightshift/common';
import { JobStore } from './jobs.js';
import type { JobRow, NodeRow } from './rows.js';

/** How old `nodes.last_seen` may grow while its node heartbeats (see touchNode). */
export const LAST_SEEN_PRECISION_MS = 10_000;

/** The jobs a heartbeat names, by primary key. */
const HEARTBEAT_JOBS_SQL = `SELECT id, state, node_id, copy_node_id FROM jobs WHERE id IN (SELECT value FROM json_each(?))`;

/**
 * A job a node runs that is no longer its own: gone, finished, cancelled or
 * failed, or leased to other nodes. One back in the queue stays with it (its
 * report still wins if it comes first).
 */
function notTheNodes(job: Pick<JobRow, 'state' | 'node_id' | 'copy_node_id'> | undefined, nodeId: string): boolean {
  if (!job) return true;
  if (job.state === 'queued') return false;
  return job.state !== 'leased' || (job.node_id !== nodeId && job.copy_node_id !== nodeId);
}

/** Of the jobs a heartbeat names (in its order), those no longer the node's, given the rows found for them (both engines' heartbeat). */
export function notTheNodesJobs(runningJobIds: readonly string[], found: Pick<JobRow, 'id' | 'state' | 'node_id' | 'copy_node_id'>[], nodeId: string): string[] {
  const known = new Map(found.map((j) => [j.id, j]));
  return runningJobIds.filter((id) => notTheNodes(known.get(id), nodeId));
}

export class NodeStore extends JobStore {
  upsertNode(id: string, name: string, capabilities: unknown): void {
    const now = this.now();
    this.write(() => {
      this.q(
          `INSERT INTO nodes (id, name, capabilities_json, status, last_seen, connected_at) VALUES (?, ?, ?, 'online', ?, ?)
           ON CONFLICT (id) DO UPDATE SET name = excluded.name, capabilities_json = excluded.capabilities_json, status = 'online', last_seen = excluded.last_seen, connected_at = excluded.connected_at`,
        )
        .run(id, name, JSON.stringify(capabilities), now, now);
      this.nodeChanged(id, 'online');
    });
  }

  /**
   * A node was heard from. `last_seen` is only shown (the nodes page's "seen
   * 5 s ago"); the hub times nodes out from its own memory, and a disconnect or
   * a node marked down writes it exactly. So a heartbeat rewrites the row only
   * once it is `precisionMs` old: at 1,000 nodes most heartbeats write nothing.
   * Returns whether it wrote.
   */
  touchNode(id: string, precisionMs = LAST_SEEN_PRECISION_MS): boolean {
    const now = this.now();
    return this.q('UPDATE nodes SET last_seen = @now WHERE id = @id AND last_seen <= @stale').run({ now, id, stale: now - precisionMs }).changes === 1;
  }

  /**
   * A node's heartbeat in one transaction: touchNode, its leases renewed
   * (renewLeases), and of the jobs it says it runs those no longer its own
   * (see StoreEngine.heartbeat), by id.
   */
  heartbeat(nodeId: string, runningJobIds: string[], leaseMs: number): string[] {
    return this.transaction(() => {
      this.touchNode(nodeId);
      if (runningJobIds.length === 0) return [];
      this.renewLeases(nodeId, runningJobIds, leaseMs);
      return notTheNodesJobs(runningJobIds, this.q(HEARTBEAT_JOBS_SQL).all(JSON.stringify(runningJobIds)) as Pick<JobRow, 'id' | 'state' | 'node_id' | 'copy_node_id'>[], nodeId);
    });
  }

  setNodeStatus(id: string, status: 'online' | 'offline'): void {
    this.write(() => {
      this.q('UPDATE nodes SET status = ?, last_seen = ? WHERE id = ?').run(status, this.now(), id);
      this.nodeChanged(id, status);
    });
  }

  listNodes(): NodeRow[] {
    return this.q('SELECT * FROM nodes ORDER BY name, id').all() as NodeRow[];
  }

  /** Marks every node offline; used at start, before nodes reconnect. */
  markAllNodesOffline(): void {
    this.q(`UPDATE nodes SET status = 'offline'`).run();
  }

  /** The fingerprint of the token that enrolled this node id, if one did. */
  nodeTokenBinding(nodeId: string): string | undefined {
    return (this.q('SELECT token_fingerprint FROM node_tokens WHERE node_id = ?').get(nodeId) as { token_fingerprint: string } | undefined)?.token_fingerprint;
  }

  /** Binds a node id to a token (its first enrolment, or a new token once the old one was revoked). */
  bindNodeToken(nodeId: string, tokenFingerprint: string): void {
    this.q(
      `INSERT INTO node_tokens (node_id, token_fingerprint, bound_at) VALUES (?, ?, ?)
       ON CONFLICT (node_id) DO UPDATE SET token_fingerprint = excluded.token_fingerprint, bound_at = excluded.bound_at`,
    ).run(nodeId, tokenFingerprint, this.now());
  }

  /** Records a node event (up/down) in the outbox. */
  recordNodeEvent(subject: string, nodeId: string, extra: Record<string, unknown>): void {
    const now = this.now();
    this.write(() => this.enqueue(subject, `${subject}.${nodeId}.${now}`, { nodeId, at: new Date(now).toISOString(), ...extra }));
  }

  /** A node stopped answering: offline, what it held requeued (or handed to copies), node.down announced. */
  markNodeDown(nodeId: string, why: string): JobRow[] {
    return this.transaction(() => {
      this.q('UPDATE nodes SET status = ?, last_seen = ? WHERE id = ?').run('offline', this.now(), nodeId);
      const released = this.releaseNode(nodeId, `node ${nodeId} down: ${why}`);
      this.recordNodeEvent(SUBJECTS.nodeDown, nodeId, { why, requeued: released.length });
      this.nodeChanged(nodeId, 'down');
      return released;
    });
  }
}

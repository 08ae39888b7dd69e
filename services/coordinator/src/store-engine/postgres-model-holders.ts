/**
 * The PostgreSQL engine's model holders: one row per (node, hash) held,
 * written by the replica the node is connected to, so every replica's pick
 * counts every node's holdings (rule 4 of the pick). Only online nodes count.
 */
import type pg from 'pg';
import type { ModelHolderEngine } from './engine.js';
import { heldHashes } from './model-holders.js';
import { inTransaction } from './postgres-pool.js';

export class PgModelHolders implements ModelHolderEngine {
  constructor(private readonly pool: pg.Pool) {}

  async setHeld(nodeId: string, hashes: readonly string[]): Promise<void> {
    const distinct = heldHashes(nodeId, hashes);
    // Only the difference is written: an unchanged set deletes and inserts nothing.
    await inTransaction(this.pool, async (c) => {
      await c.query('DELETE FROM node_models WHERE node_id = $1 AND NOT (hash = ANY($2))', [nodeId, distinct]);
      if (distinct.length) await c.query('INSERT INTO node_models (node_id, hash) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING', [nodeId, distinct]);
    });
  }

  async holderCounts(): Promise<Map<string, number>> {
    const { rows } = await this.pool.query<{ hash: string; n: number }>(
      `SELECT m.hash, COUNT(*) AS n FROM node_models m JOIN nodes n ON n.id = m.node_id WHERE n.status = 'online' GROUP BY m.hash`,
    );
    return new Map(rows.map((r) => [r.hash, r.n]));
  }
}

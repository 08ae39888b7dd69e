/**
 * The coordinator's store, from its settings: the embedded SQLite file in
 * the data folder, or PostgreSQL when NIGHTSHIFT_DATABASE_URL is set (several
 * replicas on one database). Also what must be the same on every replica:
 * the share links' signing secret (in the database on PostgreSQL, so a link
 * made through one replica opens on all; beside the SQLite file otherwise).
 */
import { join } from 'node:path';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { redactDatabaseUrl, type Config, type Logger } from '@nightshift/common';
import { loadShareSecret } from './shares-token.js';
import { SqliteEngine, type EngineStore } from './store-engine/sqlite.js';
import { PostgresEngine } from './store-engine/postgres.js';
import type { StoreEngine } from './store-engine/engine.js';

export interface OpenedStore {
  engine: StoreEngine;
  /** The synchronous Store under a SQLite engine (its commit hook tells live clients of every job); none on PostgreSQL. */
  sqlite: EngineStore | undefined;
  shareSecret: Buffer;
}

/**
 * Shown in pg_stat_activity; names the replica a node row and a sweep being
 * stored belong to. At most 63 bytes: PostgreSQL keeps no more of an
 * application_name, and a longer one never matched its own sessions (23 +
 * 31 + 1 + 8 here), so other replicas took a live replica for dead.
 */
export function replicaName(host = hostname()): string {
  return `nightshift-coordinator-${host.replace(/[^A-Za-z0-9.-]/g, '').slice(0, 31)}-${randomBytes(4).toString('hex')}`;
}

export async function openStore(config: Config, log: Logger): Promise<OpenedStore> {
  const opts = { maxAttempts: config.NIGHTSHIFT_MAX_ATTEMPTS, blocklistAfter: config.NIGHTSHIFT_BLOCKLIST_AFTER };
  const url = config.NIGHTSHIFT_DATABASE_URL;
  if (url) {
    const engine = await PostgresEngine.open({ url, applicationName: replicaName(), poolSize: config.NIGHTSHIFT_DATABASE_POOL_SIZE, ...opts });
    log.info({ database: redactDatabaseUrl(url), replica: engine.applicationName, poolSize: config.NIGHTSHIFT_DATABASE_POOL_SIZE }, 'store: PostgreSQL');
    return { engine, sqlite: undefined, shareSecret: await engine.sharedSecret('share-links') };
  }
  // The engine owns the file: closing it closes the database.
  const engine = SqliteEngine.open(join(config.NIGHTSHIFT_DATA_DIR, 'coordinator.sqlite'), opts);
  return { engine, sqlite: engine.store, shareSecret: loadShareSecret(config.NIGHTSHIFT_DATA_DIR) };
}

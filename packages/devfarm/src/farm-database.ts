/**
 * The PostgreSQL database a farm's coordinator replicas share: a fresh
 * database on a server the caller runs (so several farms can share one
 * server), or on a throwaway server started here and stopped with the farm.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startPostgres, type PostgresServer } from './postgres.js';

export interface FarmDatabase {
  /** NIGHTSHIFT_DATABASE_URL for every coordinator replica. */
  url: string;
  /** The server it lives on. */
  server: PostgresServer;
  /** Stops the server when it was started here; a caller's server is left running. */
  close(): Promise<void>;
}

/** `true`: a server of the farm's own (its log in `dir`/logs/postgres.log); a server: a new database on it. */
export async function openFarmDatabase(dir: string, postgres: PostgresServer | true): Promise<FarmDatabase> {
  const owned = postgres === true;
  const server = owned ? await startPostgres({ logFile: join(dir, 'logs', 'postgres.log') }) : postgres;
  try {
    // A database per farm: farms on one server never see each other's jobs.
    const url = await server.createDatabase(`nightshift_${randomBytes(6).toString('hex')}`);
    return { url, server, close: async () => (owned ? server.close() : undefined) };
  } catch (err) {
    if (owned) await server.close();
    throw err;
  }
}

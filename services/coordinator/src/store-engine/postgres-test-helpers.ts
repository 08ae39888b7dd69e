/** What PostgreSQL engine tests share (not a test file itself: the runner picks up *.test.ts only). */
import pg from 'pg';
import type { PostgresServer } from '@nightshift/devfarm';
import { PostgresEngine } from './postgres.js';

/** A fresh database with an engine on it and a plain session beside it (to arrange or read what the engine's API does not), both closed after `body`. */
export async function withEngineAndAdmin(server: PostgresServer, name: string, body: (engine: PostgresEngine, admin: pg.Client) => Promise<void>): Promise<void> {
  const url = await server.createDatabase(name);
  const engine = await PostgresEngine.open({ url });
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await body(engine, admin);
  } finally {
    await admin.end();
    await engine.close();
  }
}

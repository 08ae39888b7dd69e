import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import pg from 'pg';
import { openFarmDatabase } from './farm-database.js';
import { postgresMissing, startPostgres } from './postgres.js';
import { tempDir } from './tmp.js';

async function canQuery(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

test('farms on a caller\'s server get a database each and leave the server running', { skip: postgresMissing() }, async () => {
  const server = await startPostgres();
  try {
    const [a, b] = [await openFarmDatabase('/unused', server), await openFarmDatabase('/unused', server)];
    assert.notEqual(a.url, b.url);
    await a.close();
    assert.ok(await canQuery(b.url), 'closing a farm\'s database stopped the caller\'s server');
  } finally {
    await server.close();
  }
});

test('a farm\'s own server logs into the farm and is stopped with it', { skip: postgresMissing() }, async () => {
  const tmp = tempDir('nightshift-farm-db-');
  try {
    mkdirSync(`${tmp.dir}/logs`);
    const db = await openFarmDatabase(tmp.dir, true);
    assert.ok(await canQuery(db.url));
    await db.close();
    assert.equal(await canQuery(db.url), false);
    assert.equal(existsSync(db.server.socketDir), false, 'its folder was removed');
    assert.ok(existsSync(`${tmp.dir}/logs/postgres.log`));
  } finally {
    tmp.cleanup();
  }
});

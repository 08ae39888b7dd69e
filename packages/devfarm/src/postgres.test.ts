import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { postgresMissing, startPostgres } from './postgres.js';

async function withClient<T>(config: pg.ClientConfig, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(config);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

test('a throwaway PostgreSQL: loopback and socket, committed rows survive kill -9, close removes its folder', { skip: postgresMissing() }, async () => {
  const server = await startPostgres();
  try {
    const url = await server.createDatabase('probe');
    await withClient({ connectionString: url }, async (c) => {
      await c.query('CREATE TABLE t (v int); INSERT INTO t VALUES (42)');
      assert.equal((await c.query<{ fsync: string }>('SHOW fsync')).rows[0]!.fsync, 'off');
    });

    await server.kill9();
    await server.start();
    // The unix socket in the server's own folder answers too.
    const rows = await withClient({ host: server.socketDir, port: server.port, user: 'postgres', database: 'probe' }, async (c) => (await c.query<{ v: number }>('SELECT v FROM t')).rows);
    assert.deepEqual(rows, [{ v: 42 }]);
    assert.throws(() => server.urlFor('x; DROP'), /database name/);
  } finally {
    await server.close();
  }
  assert.equal(existsSync(server.socketDir), false);
});

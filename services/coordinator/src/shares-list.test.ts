/** GET /api/shares: a user lists their own links; an admin every owner's, each naming its owner (issue 16). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { migrate } from './db.js';
import { ShareTokens } from './shares-token.js';
import { shareRoutes } from './shares-routes.js';
import { asCaller } from './callers-test-helpers.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { LOCAL_ADMIN } from './callers.js';

test("GET /api/shares: alice sees hers, bob his, an admin both with their owners", async () => {
  const db = new Database(':memory:');
  db.pragma('foreign_keys = ON');
  migrate(db);
  const engine = new SqliteEngine(new EngineStore(db));
  const made = async (owner: string) => (await engine.shares.create({ title: `${owner}'s`, renderKeys: ['a'.repeat(64)], expiresAt: Date.now() + 3_600_000, owner })).id;
  const alice = await made('alice');
  const bob = await made('bob');
  const deps = { config: { NIGHTSHIFT_INDEXER_URL: 'http://127.0.0.1:9' }, engine };
  const routes = shareRoutes(deps, { shares: engine.shares, tokens: new ShareTokens(Buffer.alloc(32, 7)) });
  const list = async (caller: { user: string; admin: boolean }) => {
    const res = await asCaller(routes, caller).request('http://farm/');
    assert.equal(res.status, 200);
    return ((await res.json()) as { shares: { id: string; owner: string }[] }).shares.map((s) => `${s.owner}:${s.id}`).sort();
  };
  assert.deepEqual(await list({ user: 'alice', admin: false }), [`alice:${alice}`]);
  assert.deepEqual(await list({ user: 'bob', admin: false }), [`bob:${bob}`]);
  assert.deepEqual(await list(LOCAL_ADMIN), [`alice:${alice}`, `bob:${bob}`].sort());
  assert.deepEqual(await list({ user: 'carol', admin: true }), [`alice:${alice}`, `bob:${bob}`].sort(), 'any admin key sees all');
});

/**
 * People and keys (issue 16) through the real router on a real SQLite file:
 * who a request is, the key routes, /api/me, quotas, and which webhooks hear
 * of whose sweeps. (test/e2e/users-keys.test.ts walks every route on a farm.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Hono } from 'hono';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { seededCoordinator, tempDir, type SeededCoordinator } from '@nightshift/devfarm';
import Database from 'better-sqlite3';
import { migrate, openDb } from './db.js';
import { Store } from './store.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { createHttpApp } from './http.js';
import { Live } from './live.js';
import { identify, keyHash, LOCAL_ADMIN } from './callers.js';
import { checkQuota, QuotaExceeded, quotaOf } from './quota.js';
import { ownKeys } from './store/completion.js';

const ORIGIN = 'http://127.0.0.1:8080';
const HOUR = 3_600_000;

test('identify: an open farm is the local admin until a key exists; then a key names its user, the farm token the local admin, and a revoked key nobody', async () => {
  const store = new EngineStore(openDb(':memory:'));
  const engine = new SqliteEngine(store);
  assert.deepEqual(await identify(engine, undefined, undefined), LOCAL_ADMIN);
  assert.deepEqual(await identify(engine, undefined, 'Bearer anything'), LOCAL_ADMIN, 'no token and no key: the farm is open');
  assert.ok(store.addKey({ name: 'ann', admin: true, weight: 1, quotaImages: null }, keyHash('k-ann')));
  assert.ok(store.addKey({ name: 'ben', admin: false, weight: 2, quotaImages: 10 }, keyHash('k-ben')));
  assert.equal(store.addKey({ name: 'ben', admin: false, weight: 2, quotaImages: 10 }, keyHash('k-ben-2')), undefined, 'one active key per user');
  assert.equal(await identify(engine, undefined, undefined), undefined, 'once a key exists, a request without one is nobody');
  assert.deepEqual(await identify(engine, undefined, 'Bearer k-ann'), { user: 'ann', admin: true });
  assert.deepEqual(await identify(engine, undefined, 'Bearer k-ben'), { user: 'ben', admin: false });
  assert.equal(await identify(engine, undefined, 'Bearer k-nobody'), undefined);
  assert.deepEqual(await identify(engine, 'farm-token', 'Bearer farm-token'), LOCAL_ADMIN);
  assert.deepEqual(await identify(engine, 'farm-token', 'Bearer k-ben'), { user: 'ben', admin: false }, 'keys work beside the farm token');
  assert.equal(store.revokeKeys('ben'), 1);
  assert.equal(await identify(engine, undefined, 'Bearer k-ben'), undefined, 'revoked: refused by the very next lookup');
  // Only hashes are stored.
  const stored = store.db.prepare('SELECT hash FROM api_keys').all() as { hash: string }[];
  assert.ok(stored.every((r) => /^[0-9a-f]{64}$/.test(r.hash) && r.hash !== 'k-ann'));
});

test("the migration: rows from before users are the local user's, and its running count starts from the leased jobs", () => {
  // Which migration makes `users`: the first step after which the table exists.
  const scratch = new Database(':memory:');
  let users = 0;
  while (!scratch.prepare("SELECT 1 FROM sqlite_master WHERE name = 'users'").get()) migrate(scratch, ++users);
  scratch.close();
  const db = new Database(':memory:');
  migrate(db, users - 1);
  db.prepare(`INSERT INTO sweeps (id, name, spec_json, status, priority, backend, total, created_at) VALUES ('sw-old', 'old', '{}', 'running', 0, 'procedural', 3, 1)`).run();
  const job = db.prepare(`INSERT INTO jobs (id, sweep_id, idx, render_key, prompt, seed, params_json, axes_json, backend, model, state) VALUES (?, 'sw-old', ?, ?, 'p', 1, '{}', '{}', 'procedural', 'm', ?)`);
  job.run('j0', 0, 'a'.repeat(64), 'leased');
  job.run('j1', 1, 'b'.repeat(64), 'leased');
  job.run('j2', 2, 'c'.repeat(64), 'queued');
  migrate(db);
  assert.deepEqual(db.prepare("SELECT name, admin, weight, running FROM users").all(), [{ name: 'local', admin: 1, weight: 1, running: 2 }]);
  assert.equal((db.prepare("SELECT owner FROM sweeps WHERE id = 'sw-old'").get() as { owner: string }).owner, 'local');
  db.prepare("UPDATE jobs SET state = 'done' WHERE id = 'j0'").run();
  db.prepare("UPDATE jobs SET state = 'leased' WHERE id = 'j2'").run();
  db.prepare("UPDATE jobs SET state = 'queued' WHERE id = 'j1'").run();
  assert.equal((db.prepare("SELECT running FROM users WHERE name = 'local'").get() as { running: number }).running, 1);
  db.close();
});

test('quotas count the images a user submitted since 00:00 UTC', async () => {
  let now = Date.UTC(2026, 0, 2, 23, 0);
  const store = new EngineStore(openDb(':memory:'), { now: () => now });
  const engine = new SqliteEngine(store);
  store.addKey({ name: 'ben', admin: false, weight: 1, quotaImages: 10 }, keyHash('k'));
  const spec = parseSpec({ prompts: ['p'], seeds: { count: 6 } });
  const add = () => store.createSweep({ name: 'x', spec, priority: 0, backend: 'procedural', model: 'm', owner: 'ben' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })));
  assert.equal(await quotaOf(engine, 'local', now), null, 'no quota: none');
  add();
  assert.deepEqual(await quotaOf(engine, 'ben', now), { imagesPerDay: 10, usedToday: 6, leftToday: 4, resetsAt: '2026-01-03T00:00:00.000Z' });
  await assert.rejects(checkQuota(engine, 'ben', 6, now), (e: unknown) => e instanceof QuotaExceeded && /6 image\(s\) but 4 of the quota of 10 a day are left/.test(e.message));
  await checkQuota(engine, 'ben', 4, now);
  now += 2 * HOUR; // the next UTC day
  assert.equal((await quotaOf(engine, 'ben', now))!.leftToday, 10);
});

test("a sweep's webhook events reach its owner's webhooks only; node events reach everyone's", () => {
  const store = new Store(openDb(':memory:'));
  const spec = parseSpec({ prompts: ['p'], seeds: { count: 1 } });
  store.createSweep({ name: 'a', spec, priority: 0, backend: 'procedural', model: 'm', owner: 'ann' }, expandSweep(spec, 10).map((j) => ({ ...j, minVramMb: 0 })), 'sw-a');
  const anns = store.createWebhook({ url: 'http://127.0.0.1:1/a', events: ['sweep.finished', 'node.down'], secret: 's', format: 'json', owner: 'ann' });
  const bens = store.createWebhook({ url: 'http://127.0.0.1:1/b', events: ['sweep.finished', 'node.down'], secret: 's', format: 'json', owner: 'ben' });
  store.upsertNode('n1', 'gpu', {});
  const [job] = store.lease([store.jobs('sw-a')[0]!.id], 'n1', 30_000);
  store.completeJob(job!.id, 'n1', { ...ownKeys(job!), renderMs: 1, skipped: false });
  store.markNodeDown('n1', 'test');
  const rows = store.db.prepare('SELECT webhook_id, event FROM webhook_deliveries ORDER BY id').all() as { webhook_id: string; event: string }[];
  assert.deepEqual(rows, [
    { webhook_id: anns.id, event: 'sweep.finished' },
    { webhook_id: anns.id, event: 'node.down' },
    { webhook_id: bens.id, event: 'node.down' },
  ]);
  assert.deepEqual(store.listWebhooks('ben').map((w) => w.id), [bens.id]);
});

describe('the key routes and /api/me through the router', () => {
  let tmp: ReturnType<typeof tempDir>;
  let seeded: SeededCoordinator;
  let app: Hono;
  const live = new Live();
  before(() => {
    tmp = tempDir();
    seeded = seededCoordinator(tmp.dir);
    app = createHttpApp({ ...seeded.deps, hub: { ...seeded.deps.hub, connectedNodeIds: () => [] }, placement: { explain: () => [] }, live });
  });
  after(() => {
    seeded.close();
    tmp.cleanup();
  });
  const call = (method: string, path: string, key?: string, body?: unknown) =>
    app.request(`${ORIGIN}${path}`, {
      method,
      headers: { host: '127.0.0.1:8080', ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });

  test('an open farm: everyone is the local admin; its first key must be an admin key; then keys are needed', async () => {
    assert.deepEqual(await (await call('GET', '/api/me')).json(), { user: 'local', admin: true, quota: null });
    const first = await call('POST', '/api/keys', undefined, { name: 'dora' });
    assert.equal(first.status, 409);
    assert.match(((await first.json()) as { error: string }).error, /first key .* must be an admin key/);
    const bad = await call('POST', '/api/keys', undefined, { name: 'Not A Name', admin: true });
    assert.equal(bad.status, 400);
    assert.equal((await call('POST', '/api/keys', undefined, { name: 'local', admin: true })).status, 400, 'local is the farm token’s user');
    const made = await call('POST', '/api/keys', undefined, { name: 'admin1', admin: true });
    assert.equal(made.status, 201);
    const adminKey = ((await made.json()) as { key: string }).key;
    assert.equal((await call('GET', '/api/me')).status, 401, 'with a key on the farm, no key is no one');
    assert.equal((await call('GET', '/api/sweeps')).status, 401);
    const dora = await call('POST', '/api/keys', adminKey, { name: 'dora', quotaImages: 5, weight: 2.5 });
    assert.equal(dora.status, 201);
    const doraKey = ((await dora.json()) as { key: string }).key;
    assert.equal((await call('POST', '/api/keys', adminKey, { name: 'dora' })).status, 409, 'dora already has a key');
    const me = (await (await call('GET', '/api/me', doraKey)).json()) as { user: string; admin: boolean; quota: { imagesPerDay: number; leftToday: number } };
    assert.deepEqual([me.user, me.admin, me.quota.imagesPerDay, me.quota.leftToday], ['dora', false, 5, 5]);
    assert.equal((await call('GET', '/api/keys', doraKey)).status, 404, 'keys are for admins');
    const listed = (await (await call('GET', '/api/keys', adminKey)).json()) as { keys: { name: string; weight: number; active: boolean }[] };
    assert.deepEqual(listed.keys.find((k) => k.name === 'dora'), { name: 'dora', admin: false, weight: 2.5, quotaImages: 5, active: true, running: 0 });
    // A sweep over the quota: 429 naming it; within it: dora's own.
    const over = await call('POST', '/api/sweeps', doraKey, { prompts: ['x'], seeds: { count: 6 } });
    assert.equal(over.status, 429);
    assert.match(((await over.json()) as { error: string }).error, /quota of 5 a day/);
    assert.equal((await call('POST', '/api/sweeps', doraKey, { prompts: ['x'], seeds: { count: 5 } })).status, 201);
    assert.equal(((await (await call('GET', '/api/sweeps', doraKey)).json()) as { total: number }).total, 1, 'dora sees her own sweep only');
    // Her live events are her own sweeps' (and the nodes'): someone else's job event is not sent.
    const doraSweep = ((await (await call('GET', '/api/sweeps', doraKey)).json()) as { sweeps: { id: string }[] }).sweeps[0]!.id;
    const otherSpec = parseSpec({ prompts: ['theirs'], seeds: [1] });
    const otherSweep = seeded.store.createSweep({ name: 'theirs', spec: otherSpec, priority: 0, backend: 'procedural', model: 'm', owner: 'local' }, expandSweep(otherSpec, 10).map((j) => ({ ...j, minVramMb: 0 }))).id;
    const res = await call('GET', '/api/events', doraKey);
    assert.equal(res.status, 200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (marker: string) => {
      while (!text.includes(marker)) text += (await reader.read()).value ?? '';
    };
    await until('event: hello');
    live.emit({ type: 'job', sweepId: otherSweep, jobId: 'theirs-1', state: 'done' });
    live.emit({ type: 'job', sweepId: doraSweep, jobId: 'hers-1', state: 'done' });
    live.emit({ type: 'node', nodeId: 'n-last', status: 'online' });
    await until('n-last');
    await reader.cancel();
    assert.match(text, /hers-1/);
    assert.doesNotMatch(text, /theirs-1/, 'another user’s job event reached dora');
    // Revoked: refused at once; her sweep stays hers.
    assert.equal((await call('DELETE', '/api/keys/dora', adminKey)).status, 204);
    assert.equal((await call('GET', '/api/me', doraKey)).status, 401);
    assert.equal((await call('DELETE', '/api/keys/dora', adminKey)).status, 404, 'nothing left to revoke');
  });
});

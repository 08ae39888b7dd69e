/**
 * The key routes' edges (issue 16 review): a request that began while the
 * farm was open cannot make a key once the farm has one (its body read
 * slowly after the caller check), and the last admin key of a farm without
 * NIGHTSHIFT_API_TOKEN cannot be revoked (that would silently reopen the
 * farm to everyone, or leave nobody to manage keys).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Hono } from 'hono';
import { seededCoordinator, tempDir, type SeededCoordinator } from '@nightshift/devfarm';
import { createHttpApp } from './http.js';
import { Live } from './live.js';
import { identify } from './callers.js';

const ORIGIN = 'http://127.0.0.1:8080';
const HOST = '127.0.0.1:8080';

function farm(token?: string) {
  let tmp: ReturnType<typeof tempDir>;
  let seeded: SeededCoordinator;
  const ctx = {} as { app: Hono; seeded: SeededCoordinator };
  before(() => {
    tmp = tempDir();
    seeded = seededCoordinator(tmp.dir, token ? { NIGHTSHIFT_API_TOKEN: token } : {});
    ctx.seeded = seeded;
    ctx.app = createHttpApp({ ...seeded.deps, hub: { ...seeded.deps.hub, connectedNodeIds: () => [] }, placement: { explain: () => [] }, live: new Live() });
  });
  after(() => {
    seeded.close();
    tmp.cleanup();
  });
  const call = (method: string, path: string, key?: string, body?: unknown) =>
    ctx.app.request(`${ORIGIN}${path}`, {
      method,
      headers: { host: HOST, ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  const keyOf = async (res: Response | Promise<Response>) => {
    const r = await res;
    const text = await r.text();
    assert.equal(r.status, 201, text);
    return (JSON.parse(text) as { key: string }).key;
  };
  return { ctx, call, keyOf };
}

describe('a farm without a token', () => {
  const { ctx, call, keyOf } = farm();
  let ownerKey = '';

  test('a key request whose body arrives after the first key was made is refused', async () => {
    const payload = new TextEncoder().encode(JSON.stringify({ name: 'mallory', admin: true }));
    let reading!: () => void;
    const bodyRead = new Promise<void>((r) => (reading = r));
    let feed!: ReadableStreamDefaultController<Uint8Array>;
    // Pulled only when the handler reads it, i.e. after the caller check passed (an open farm: local admin).
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (feed = c), pull: () => reading() }, { highWaterMark: 0 });
    const slow = ctx.app.request(
      new Request(`${ORIGIN}/api/keys`, { method: 'POST', body, duplex: 'half', headers: { host: HOST, 'content-type': 'application/json', 'content-length': String(payload.length) } } as RequestInit),
    );
    await bodyRead;
    ownerKey = await keyOf(call('POST', '/api/keys', undefined, { name: 'owner', admin: true }));
    feed.enqueue(payload);
    feed.close();
    const res = await slow;
    assert.equal(res.status, 401, await res.text());
    assert.deepEqual(
      ctx.seeded.store.listUsers().filter((u) => u.keys > 0).map((u) => u.name),
      ['owner'],
      'no key for the request that started on the open farm',
    );
    assert.deepEqual(identify(ctx.seeded.store, undefined, `Bearer ${ownerKey}`), { user: 'owner', admin: true });
  });

  test('the last admin key cannot be revoked; with another admin it can', async () => {
    assert.ok(ownerKey, 'the first test made the farm its first key');
    await keyOf(call('POST', '/api/keys', ownerKey, { name: 'user1' }));
    const res = await call('DELETE', '/api/keys/owner', ownerKey);
    assert.equal(res.status, 409);
    assert.match(((await res.json()) as { error: string }).error, /last admin key/);
    assert.equal((await call('GET', '/api/me')).status, 401, 'the farm still asks for a key');
    const second = await keyOf(call('POST', '/api/keys', ownerKey, { name: 'owner2', admin: true }));
    assert.equal((await call('DELETE', '/api/keys/owner', ownerKey)).status, 204, 'another admin holds a key now');
    assert.equal((await call('GET', '/api/me', ownerKey)).status, 401, 'revoked at once');
    assert.equal((await call('DELETE', '/api/keys/owner2', second)).status, 409, 'owner2 holds the last admin key now');
    assert.equal((await call('DELETE', '/api/keys/user1', second)).status, 204, 'other keys are revoked as before');
    assert.equal((await call('GET', '/api/me')).status, 401, 'still closed');
  });
});

describe('a farm with NIGHTSHIFT_API_TOKEN', () => {
  const { call, keyOf } = farm('farm-token');
  test('its last admin key can be revoked: the farm token still closes the farm', async () => {
    await keyOf(call('POST', '/api/keys', 'farm-token', { name: 'boss', admin: true }));
    assert.equal((await call('DELETE', '/api/keys/boss', 'farm-token')).status, 204);
    assert.equal((await call('GET', '/api/me')).status, 401);
  });
});

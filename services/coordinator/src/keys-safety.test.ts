/**
 * The key routes' edges (issue 16 review): a request that began while the
 * farm was open cannot make a key once the farm has one (its body read
 * slowly after the caller check), and the last admin key of a farm without
 * NIGHTSHIFT_API_TOKEN cannot be revoked (that would silently reopen the
 * farm to everyone, or leave nobody to manage keys). A live event stream
 * opened with a key ends once the key is revoked, and GET /api/nodes names
 * only the caller's own jobs on each node.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Hono } from 'hono';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { seededCoordinator, tempDir, type SeededCoordinator } from '@nightshift/devfarm';
import { createHttpApp } from './http.js';
import { Live } from './live.js';
import { identify, keyHash } from './callers.js';

const ORIGIN = 'http://127.0.0.1:8080';
const HOST = '127.0.0.1:8080';

function farm(token?: string) {
  let tmp: ReturnType<typeof tempDir>;
  let seeded: SeededCoordinator;
  const ctx = {} as { app: Hono; seeded: SeededCoordinator; live: Live };
  before(() => {
    tmp = tempDir();
    seeded = seededCoordinator(tmp.dir, token ? { NIGHTSHIFT_API_TOKEN: token } : {});
    ctx.seeded = seeded;
    ctx.live = new Live();
    ctx.app = createHttpApp({ ...seeded.deps, hub: { ...seeded.deps.hub, connectedNodeIds: () => [] }, placement: { explain: () => [] }, live: ctx.live });
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
    assert.deepEqual(await identify(ctx.seeded.engine, undefined, `Bearer ${ownerKey}`), { user: 'owner', admin: true });
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
    const bad = await call('DELETE', `/api/keys/${'x'.repeat(65)}`, second);
    assert.equal(bad.status, 400, 'a name no key can have is refused, saying why');
    assert.match(((await bad.json()) as { error: string }).error, /not a key name/);
    assert.equal((await call('GET', '/api/me')).status, 401, 'still closed');
  });
});

describe('two first keys at once', () => {
  let tmp: ReturnType<typeof tempDir>;
  let seeded: SeededCoordinator;
  before(() => {
    tmp = tempDir();
    seeded = seededCoordinator(tmp.dir);
  });
  after(() => {
    seeded.close();
    tmp.cleanup();
  });

  test('a first key made between the open-farm check and the insert refuses the other (another replica, another request)', async () => {
    // Another request's first key lands after this one was found to be the open farm's caller, right before its insert.
    const engine = Object.assign(Object.create(seeded.engine) as typeof seeded.engine, {
      addFirstKey: async (...args: Parameters<typeof seeded.engine.addFirstKey>) => {
        assert.ok(await seeded.engine.addFirstKey({ name: 'winner', admin: true, weight: 1, quotaImages: null }, keyHash('k-winner')));
        return seeded.engine.addFirstKey(...args);
      },
    });
    const app = createHttpApp({ ...seeded.deps, engine, hub: { ...seeded.deps.hub, connectedNodeIds: () => [] }, placement: { explain: () => [] }, live: new Live() });
    const res = await app.request(`${ORIGIN}/api/keys`, { method: 'POST', headers: { host: HOST, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'loser', admin: true }) });
    assert.equal(res.status, 401, await res.text());
    assert.deepEqual(
      seeded.store.listUsers().filter((u) => u.keys > 0).map((u) => u.name),
      ['winner'],
      'no key for the request whose open farm closed before its insert',
    );
  });
});

describe('a farm with NIGHTSHIFT_API_TOKEN', () => {
  const { ctx, call, keyOf } = farm('farm-token');

  // The timeout only turns a stream that never ends (the bug) into a failure; nothing is timed.
  test('a live event stream ends when its key is revoked, before sending anything more', { timeout: 30_000 }, async () => {
    const eve = await keyOf(call('POST', '/api/keys', 'farm-token', { name: 'eve' }));
    const res = await call('GET', '/api/events', eve);
    assert.equal(res.status, 200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (marker: string) => {
      while (!text.includes(marker)) {
        const r = await reader.read();
        if (r.done) throw new Error(`stream ended before ${marker}`);
        text += r.value;
      }
    };
    await until('event: hello');
    ctx.live.emit({ type: 'node', nodeId: 'n-before', status: 'online' });
    await until('n-before');
    assert.equal((await call('DELETE', '/api/keys/eve', 'farm-token')).status, 204);
    ctx.live.emit({ type: 'node', nodeId: 'n-after', status: 'online' });
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      text += r.value;
    }
    assert.doesNotMatch(text, /n-after/, 'an event reached a revoked key');
  });

  test("the dashboard's image cookie opens its user's images only, and only while their key is active", async () => {
    const store = ctx.seeded.store;
    const hal = await keyOf(call('POST', '/api/keys', 'farm-token', { name: 'hal' }));
    const ida = await keyOf(call('POST', '/api/keys', 'farm-token', { name: 'ida' }));
    const spec = parseSpec({ prompts: ['hal'], seeds: [7] });
    const sweep = store.createSweep({ name: 'hal', spec, priority: 0, backend: 'procedural', model: 'm', owner: 'hal' }, expandSweep(spec, 10).map((j) => ({ ...j, minVramMb: 0 }))).id;
    store.db.prepare(`UPDATE jobs SET state = 'done' WHERE sweep_id = ?`).run(sweep);
    const image = `/ui/files/images/${store.jobs(sweep)[0]!.render_key}.png`;
    const cookieOf = async (key: string) => {
      const res = await call('POST', '/ui/session', key);
      assert.equal(res.status, 200);
      return res.headers.get('set-cookie')!.split(';')[0]!;
    };
    const [halCookie, idaCookie] = [await cookieOf(hal), await cookieOf(ida)];
    const get = (cookie: string) => ctx.app.request(`${ORIGIN}${image}`, { headers: { host: HOST, cookie } });
    assert.equal((await get(halCookie)).status, 200, "hal's cookie opens hal's image");
    assert.equal((await get(idaCookie)).status, 404, "ida's cookie does not open hal's image");
    assert.equal((await get(await cookieOf('farm-token'))).status, 200, "the admin's opens it");
    assert.equal((await call('DELETE', '/api/keys/hal', 'farm-token')).status, 204);
    assert.equal((await get(halCookie)).status, 401, "a revoked key's cookie opens nothing from the next request on");
  });

  test("GET /api/nodes names a user's own jobs on each node, an admin's all", async () => {
    const store = ctx.seeded.store;
    const fay = await keyOf(call('POST', '/api/keys', 'farm-token', { name: 'fay' }));
    const sweepOf = (owner: string) => {
      const spec = parseSpec({ prompts: [owner], seeds: [1] });
      return store.createSweep({ name: owner, spec, priority: 0, backend: 'procedural', model: 'm', owner }, expandSweep(spec, 10).map((j) => ({ ...j, minVramMb: 0 }))).id;
    };
    const [hers, theirs] = [sweepOf('fay'), sweepOf('local')];
    store.upsertNode('n1', 'n1', {});
    store.db.prepare(`UPDATE jobs SET state = 'leased', node_id = 'n1' WHERE sweep_id IN (?, ?)`).run(hers, theirs);
    const sweepsOn = async (key: string) => {
      const { nodes } = (await (await call('GET', '/api/nodes', key)).json()) as { nodes: { id: string; currentJobs: string[] }[] };
      return nodes.find((n) => n.id === 'n1')!.currentJobs.map((id) => store.getJob(id)!.sweep_id).sort();
    };
    assert.deepEqual(await sweepsOn(fay), [hers], "fay sees her job, not the other's");
    assert.deepEqual(await sweepsOn('farm-token'), [hers, theirs].sort(), 'the admin sees both');
  });

  test('its last admin key can be revoked: the farm token still closes the farm', async () => {
    await keyOf(call('POST', '/api/keys', 'farm-token', { name: 'boss', admin: true }));
    assert.equal((await call('DELETE', '/api/keys/boss', 'farm-token')).status, 204);
    assert.equal((await call('GET', '/api/me')).status, 401);
  });
});

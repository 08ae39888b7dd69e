/** Webhooks: delivery rows written with their event, the worker's attempts and retries, message shapes, signatures, URL checks, routes. */
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { createLogger } from '@nightshift/common';
import { openDb } from './db.js';
import type { Store } from './store.js';
import { EngineStore, SqliteEngine } from './store-engine/sqlite.js';
import { ownKeys } from './store/completion.js';
import { formatDuration, hostAllowed, message, refuseUrl, signature, webhookRequest } from './webhooks.js';
import { WebhookWorker } from './webhooks-worker.js';
import { webhookRoutes } from './webhooks-routes.js';
import { asCaller } from './callers-test-helpers.js';
import { Retention } from './retention.js';

const log = createLogger('webhooks-test', 'silent');

function setup(now = () => 1_000_000) {
  const store = new EngineStore(openDb(':memory:'), { now, maxAttempts: 1, blocklistAfter: 5 });
  const engine = new SqliteEngine(store);
  const spec = parseSpec({ prompts: ['a lighthouse'], seeds: { count: 2 } });
  const add = (id: string) =>
    store.createSweep({ name: id, spec, priority: 0, backend: 'procedural', model: 'procedural-v1' }, expandSweep(spec, 100).map((j) => ({ ...j, minVramMb: 0 })), id);
  /** Finishes every job of the sweep on node n1. */
  const finish = (id: string) => {
    store.upsertNode('n1', 'gpu-one', {});
    const jobs = store.jobs(id);
    store.lease(jobs.map((j) => j.id), 'n1', 30_000);
    for (const j of jobs) store.completeJob(j.id, 'n1', { ...ownKeys(j), renderMs: 1, skipped: false });
  };
  return { store, engine, add, finish };
}

const deliveries = (store: Store) => store.db.prepare('SELECT webhook_id, event_id, event, state FROM webhook_deliveries ORDER BY id').all() as { webhook_id: string; event_id: string; event: string; state: string }[];

test('a finished sweep writes one delivery per webhook that asks for it, in the transaction that settles it', () => {
  const { store, add, finish } = setup();
  const a = store.createWebhook({ url: 'http://127.0.0.1:1/a', events: ['sweep.finished'], secret: 's', format: 'json' });
  const b = store.createWebhook({ url: 'http://127.0.0.1:1/b', events: ['sweep.finished', 'node.down'], secret: 's', format: 'slack' });
  store.createWebhook({ url: 'http://127.0.0.1:1/c', events: ['sweep.failed'], secret: 's', format: 'json' });
  const heard: boolean[] = [];
  store.onCommit((c) => heard.push(c.webhooks));
  add('sw-1');
  assert.deepEqual(deliveries(store), [], 'a created sweep is no webhook event');
  assert.ok(heard.length > 0 && heard.every((w) => !w), 'commits without deliveries do not wake the webhook worker');
  heard.length = 0;
  finish('sw-1');
  assert.ok(heard.includes(true), 'the commit that wrote deliveries says so');
  assert.deepEqual(deliveries(store), [
    { webhook_id: a.id, event_id: 'sweep.done.sw-1', event: 'sweep.finished', state: 'pending' },
    { webhook_id: b.id, event_id: 'sweep.done.sw-1', event: 'sweep.finished', state: 'pending' },
  ]);
  const data = JSON.parse((store.db.prepare('SELECT data_json FROM webhook_deliveries LIMIT 1').get() as { data_json: string }).data_json) as { counts: { done: number }; name: string };
  assert.equal(data.counts.done, 2);
  assert.equal(data.name, 'sw-1');

  store.markNodeDown('n1', 'heartbeat timeout');
  const down = deliveries(store).filter((d) => d.event === 'node.down');
  assert.equal(down.length, 1);
  assert.equal(down[0]!.webhook_id, b.id);
});

test('a rolled-back settle writes no delivery; a failed sweep is sweep.failed', () => {
  const { store, add } = setup();
  store.createWebhook({ url: 'http://127.0.0.1:1/', events: ['sweep.finished', 'sweep.failed'], secret: 's', format: 'json' });
  add('sw-1');
  assert.throws(() =>
    store.transaction(() => {
      store.failQueued('sw-1', 'no node');
      throw new Error('undo');
    }),
  );
  assert.deepEqual(deliveries(store), []);
  assert.equal(store.getSweep('sw-1')!.status, 'queued');
  store.failQueued('sw-1', 'no node can run it');
  assert.deepEqual(deliveries(store).map((d) => d.event), ['sweep.failed']);
});

test('messages and bodies: json signed, ntfy plain text with a Title, discord content, slack text', () => {
  assert.equal(formatDuration((7 * 60 + 12) * 60_000 + 5_000), '7 h 12 m');
  assert.equal(formatDuration(185_000), '3 m 5 s');
  assert.equal(formatDuration(42_000), '42 s');
  const data = {
    sweepId: 'sw-9', name: 'castles', status: 'done' as const,
    counts: { queued: 0, running: 0, done: 1_150, skipped: 50, failed: 3, cancelled: 0 },
    createdAt: '', finishedAt: '', durationMs: (7 * 60 + 12) * 60_000,
  };
  assert.equal(message('sweep.finished', data).text, 'Sweep *castles* finished: 1,200 images, 3 failed, 7 h 12 m');
  const row = { event: 'sweep.finished' as const, event_id: 'sweep.done.sw-9', data_json: JSON.stringify(data), created_at: 0 };
  const json = webhookRequest(row, 'json', 'k3y', 1_700_000_000);
  const body = JSON.parse(json.body) as { id: string; event: string; sweepId: string; counts: { done: number }; sentAt: string };
  assert.deepEqual([body.id, body.event, body.sweepId, body.counts.done], ['sweep.done.sw-9', 'sweep.finished', 'sw-9', 1_150]);
  assert.equal(json.headers['x-nightshift-timestamp'], '1700000000');
  assert.equal(body.sentAt, '2023-11-14T22:13:20.000Z', 'the attempt time is inside the signed body');
  // HMAC-SHA256 over the body alone, computed here independently of signature().
  assert.equal(json.headers['x-nightshift-signature'], `sha256=${createHmac('sha256', 'k3y').update(json.body).digest('hex')}`);
  assert.match(json.headers['x-nightshift-signature']!, /^sha256=[0-9a-f]{64}$/);
  const ntfy = webhookRequest(row, 'ntfy', 'k3y', 1);
  assert.equal(ntfy.body, 'Sweep *castles* finished: 1,200 images, 3 failed, 7 h 12 m');
  assert.equal(ntfy.headers.Title, 'Nightshift: sweep finished');
  assert.match(ntfy.headers['content-type']!, /^text\/plain/);
  assert.deepEqual(JSON.parse(webhookRequest(row, 'discord', 'k', 1).body), { content: ntfy.body });
  assert.deepEqual(JSON.parse(webhookRequest(row, 'slack', 'k', 1).body), { text: ntfy.body });
});

test('URLs: http(s) only, no credentials, bounded, and on the allow-list when there is one', () => {
  assert.equal(refuseUrl('http://127.0.0.1:9/x', []), undefined);
  assert.match(refuseUrl('ftp://example.com/', [])!, /http or https/);
  assert.match(refuseUrl('file:///etc/passwd', [])!, /http or https/);
  assert.match(refuseUrl('not a url', [])!, /not a valid URL/);
  assert.match(refuseUrl('https://u:p@example.com/', [])!, /credentials/);
  assert.match(refuseUrl(`https://example.com/${'a'.repeat(2_100)}`, [])!, /longer/);
  const allow = ['ntfy.sh', '*.discord.com', 'hooks.local:8443'];
  assert.equal(refuseUrl('http://127.0.0.1:9/x', allow)?.includes('NIGHTSHIFT_WEBHOOK_ALLOW'), true);
  assert.ok(hostAllowed(new URL('https://ntfy.sh/topic'), allow));
  assert.ok(hostAllowed(new URL('https://canary.discord.com/api'), allow));
  assert.ok(!hostAllowed(new URL('https://discord.com.evil.net/'), allow));
  assert.ok(hostAllowed(new URL('https://hooks.local:8443/'), allow));
  assert.ok(!hostAllowed(new URL('https://hooks.local/'), allow));
});

/** A receiver on 127.0.0.1 answering each request with the next status of `statuses` (then 200). */
async function receiver(statuses: number[]) {
  const got: { headers: IncomingMessage['headers']; body: string; status: number }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const status = statuses.shift() ?? 200;
      got.push({ headers: req.headers, body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got, close: () => new Promise((r) => server.close(r)) };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), `timed out waiting for ${what}`);
}

test('a receiver answering 500 three times then 200 gets one success and three recorded failures', async () => {
  const r = await receiver([500, 500, 500]);
  const { store, engine, add, finish } = setup(Date.now);
  const hook = store.createWebhook({ url: r.url, events: ['sweep.finished'], secret: 'sekret', format: 'json' });
  const worker = new WebhookWorker(engine, log, { retryBaseMs: 1, retryForMs: 60_000, allow: [] });
  worker.start();
  try {
    add('sw-1');
    finish('sw-1');
    await until('delivery', () => deliveries(store)[0]?.state === 'delivered');
    assert.equal(r.got.length, 4);
    for (const g of r.got) {
      assert.equal(g.headers['x-nightshift-signature'], signature('sekret', g.body));
      assert.equal(g.headers['x-nightshift-event-id'], 'sweep.done.sw-1');
    }
    const app = asCaller(webhookRoutes({ engine, config: { NIGHTSHIFT_WEBHOOK_ALLOW: [] } }));
    const res = await app.request(`/${hook.id}/deliveries`);
    const view = (await res.json()) as { deliveries: { state: string; attempts: number; lastStatus: number; log: { statusCode: number; error: string | null }[] }[] };
    assert.equal(view.deliveries.length, 1);
    const d = view.deliveries[0]!;
    assert.deepEqual([d.state, d.attempts, d.lastStatus], ['delivered', 4, 200]);
    assert.deepEqual(d.log.map((a) => a.statusCode), [500, 500, 500, 200]);
    assert.deepEqual(d.log.map((a) => a.error), ['HTTP 500', 'HTTP 500', 'HTTP 500', null]);
  } finally {
    await worker.stop();
    await r.close();
  }
});

test('a delivery is given up once its retry window has passed; an unreachable host is an attempt too', async () => {
  const { store, engine, add, finish } = setup(Date.now);
  store.createWebhook({ url: 'http://127.0.0.1:1/nobody', events: ['sweep.finished'], secret: 's', format: 'json' });
  const worker = new WebhookWorker(engine, log, { retryBaseMs: 5, retryForMs: 40, allow: [] });
  worker.start();
  try {
    add('sw-1');
    finish('sw-1');
    await until('giving up', () => deliveries(store)[0]?.state === 'failed');
    const row = store.db.prepare('SELECT attempts, last_error FROM webhook_deliveries').get() as { attempts: number; last_error: string };
    assert.ok(row.attempts >= 1);
    assert.match(row.last_error, /fetch failed|ECONNREFUSED/);
  } finally {
    await worker.stop();
  }
});

test('routes: 201 {id}; bad bodies 400 with the field; list without secrets; delete', async () => {
  const { engine } = setup();
  const app = asCaller(webhookRoutes({ engine, config: { NIGHTSHIFT_WEBHOOK_ALLOW: [] } }));
  const post = (body: unknown) => app.request('/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const created = await post({ url: 'https://ntfy.sh/night', events: ['sweep.finished', 'sweep.finished'], secret: 'x', format: 'ntfy' });
  assert.equal(created.status, 201);
  const { id } = (await created.json()) as { id: string };
  assert.equal((await post({ url: 'gopher://x', events: ['sweep.finished'], secret: 'x' })).status, 400);
  const badEvent = await post({ url: 'https://x.test/', events: ['sweep.exploded'], secret: 'x' });
  assert.equal(badEvent.status, 400);
  assert.equal(((await badEvent.json()) as { details: { path: string }[] }).details[0]!.path, 'events.0');
  assert.equal((await post({ url: 'https://x.test/', events: [], secret: 'x' })).status, 400);
  assert.equal((await post({ url: 'https://x.test/', events: ['node.down'] })).status, 400, 'a secret is required');
  assert.equal((await app.request('/', { method: 'POST', body: 'x'.repeat(20_000) })).status, 413);
  const list = (await (await app.request('/')).json()) as { webhooks: Record<string, unknown>[] };
  assert.deepEqual(list.webhooks.map((w) => [w.id, w.url, w.events, w.format, 'secret' in w]), [[id, 'https://ntfy.sh/night', ['sweep.finished'], 'ntfy', false]]);
  assert.equal((await app.request(`/${id}`, { method: 'DELETE' })).status, 204);
  assert.equal((await app.request(`/${id}`, { method: 'DELETE' })).status, 404);
  assert.equal((await app.request(`/${id}/deliveries`)).status, 404);
});

test('a host taken off the allow-list is given up at once; retention prunes finished deliveries, never pending ones', async () => {
  let clock = 1_000_000;
  const { store, engine, add, finish } = setup(() => clock);
  store.createWebhook({ url: 'http://127.0.0.1:1/a', events: ['sweep.finished'], secret: 's', format: 'json' });
  add('sw-1');
  finish('sw-1');
  const worker = new WebhookWorker(engine, log, { retryBaseMs: 1_000, retryForMs: 60_000, allow: ['ntfy.sh'], now: () => clock });
  assert.equal(await worker.flush(), 1);
  assert.deepEqual(store.db.prepare('SELECT state, attempts, last_error FROM webhook_deliveries').get(), { state: 'failed', attempts: 1, last_error: 'host not in NIGHTSHIFT_WEBHOOK_ALLOW' });
  add('sw-2');
  finish('sw-2');
  const retention = new Retention(engine, log, { outboxMs: 1e12, resultsMs: 1e12, webhookDeliveriesMs: 1_000, now: () => clock });
  clock += 500;
  assert.equal((await retention.prune()).webhookDeliveries, 0, 'too recent');
  clock += 1_000;
  assert.equal((await retention.prune()).webhookDeliveries, 1);
  assert.deepEqual(deliveries(store).map((d) => [d.event_id, d.state]), [['sweep.done.sw-2', 'pending']]);
  assert.deepEqual(store.db.prepare('SELECT COUNT(*) AS n FROM webhook_attempts').get(), { n: 0 }, 'its attempts went with it');
});

/**
 * Webhooks over a real farm (issue 16): a receiver on 127.0.0.1 checks every
 * request's signature; each event id is answered 200 exactly once, across a
 * coordinator killed with -9 while a delivery was still pending; a receiver
 * answering 500 three times then 200 gets one success and three recorded
 * failures. Retries are fast (NIGHTSHIFT_WEBHOOK_RETRY_BASE_MS) and the test
 * waits for states, never for durations.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

const SECRET = 'night-owl-secret';
let farm: Farm | undefined;
let server: Server | undefined;
const tmp = tempDir('nightshift-webhooks-');

after(async () => {
  await farm?.stop();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  tmp.cleanup();
});

interface Received {
  path: string;
  eventId: string;
  body: string;
  signed: boolean;
  answered: number;
}

/** What the receiver answers next per path: a queue of statuses, then `fallback`. */
const answers = new Map<string, { queue: number[]; fallback: number }>();
const received: Received[] = [];

function verify(headers: Record<string, string | string[] | undefined>, body: string, path: string): boolean {
  const ts = String(headers['x-nightshift-timestamp'] ?? '');
  const got = Buffer.from(String(headers['x-nightshift-signature'] ?? ''));
  const want = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`);
  // The json format carries the attempt's time inside the signed body: the header must name the same second.
  const sentAtOk = path !== '/json' || Date.parse((JSON.parse(body) as { sentAt?: string }).sentAt ?? '') === Number(ts) * 1000;
  return ts !== '' && sentAtOk && got.length === want.length && timingSafeEqual(got, want);
}

async function startReceiver(): Promise<string> {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const path = req.url ?? '/';
      const a = answers.get(path) ?? { queue: [], fallback: 200 };
      const answered = a.queue.shift() ?? a.fallback;
      received.push({ path, eventId: String(req.headers['x-nightshift-event-id']), body, signed: verify(req.headers, body, path), answered });
      res.writeHead(answered).end();
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function api<T>(path: string, init?: { method: string; body?: unknown }): Promise<{ status: number; body: T }> {
  const res = await fetch(`${farm!.apiUrl}${path}`, {
    method: init?.method ?? 'GET',
    headers: { 'content-type': 'application/json' },
    ...(init?.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  return { status: res.status, body: (res.status === 204 ? undefined : await res.json()) as T };
}

interface DeliveryView {
  eventId: string;
  state: string;
  attempts: number;
  log: { statusCode: number | null; error: string | null }[];
}
const deliveriesOf = async (hook: string) => (await api<{ deliveries: DeliveryView[] }>(`/api/webhooks/${hook}/deliveries`)).body.deliveries;

async function runSweep(name: string, prompt: string): Promise<string> {
  const { status, body } = await api<{ id: string }>('/api/sweeps', { method: 'POST', body: { name, prompts: [prompt], seeds: { count: 2 }, params: { width: 64, height: 64, steps: 2 } } });
  assert.equal(status, 201);
  await waitFor(`sweep ${name} done`, async () => (await api<{ status: string }>(`/api/sweeps/${body.id}`)).body.status === 'done', 60_000);
  return body.id;
}

test('signed deliveries, exactly one accepted per event id across a coordinator kill -9, retries recorded', { timeout: 180_000 }, async () => {
  const receiverUrl = await startReceiver();
  farm = await startFarm({ dir: tmp.dir, nodes: 1, env: { NIGHTSHIFT_WEBHOOK_RETRY_BASE_MS: '50' } });
  await waitForNodes(farm.apiUrl, 1);

  const register = async (path: string, format?: string) => {
    const { status, body } = await api<{ id: string }>('/api/webhooks', { method: 'POST', body: { url: `${receiverUrl}${path}`, events: ['sweep.finished', 'sweep.failed'], secret: SECRET, ...(format ? { format } : {}) } });
    assert.equal(status, 201);
    return body.id;
  };
  const json = await register('/json');
  const flaky = await register('/flaky', 'slack');
  answers.set('/flaky', { queue: [500, 500, 500], fallback: 200 });
  const refused = await api<{ error: string }>('/api/webhooks', { method: 'POST', body: { url: 'file:///etc/passwd', events: ['sweep.finished'], secret: SECRET } });
  assert.equal(refused.status, 400);

  // 1. Delivered at once; the flaky receiver after three 500s.
  const first = await runSweep('castles', 'a castle at dusk');
  const firstEvent = `sweep.done.${first}`;
  await waitFor('first event delivered to both', async () => {
    const [a, b] = await Promise.all([deliveriesOf(json), deliveriesOf(flaky)]);
    return a[0]?.state === 'delivered' && b[0]?.state === 'delivered';
  }, 30_000);
  const flakyLog = (await deliveriesOf(flaky))[0]!;
  assert.deepEqual(flakyLog.log.map((a) => a.statusCode), [500, 500, 500, 200], 'three logged failures, then one success');
  assert.equal(flakyLog.attempts, 4);
  const flakyGot = received.filter((r) => r.path === '/flaky');
  assert.deepEqual(flakyGot.map((r) => r.answered), [500, 500, 500, 200]);
  assert.match((JSON.parse(flakyGot[0]!.body) as { text: string }).text, /^Sweep \*castles\* finished: 2 images, 0 failed, /);
  const firstJson = JSON.parse(received.find((r) => r.path === '/json')!.body) as { id: string; event: string; sweepId: string; counts: { done: number; skipped: number } };
  assert.deepEqual([firstJson.id, firstJson.event, firstJson.sweepId, firstJson.counts.done + firstJson.counts.skipped], [firstEvent, 'sweep.finished', first, 2]);

  // 2. The receiver is down when the next sweep finishes; the coordinator is killed with the delivery pending.
  answers.set('/json', { queue: [], fallback: 503 });
  answers.set('/flaky', { queue: [], fallback: 503 });
  const second = await runSweep('towers', 'a tower in fog');
  const secondEvent = `sweep.done.${second}`;
  await waitFor('second event attempted and pending', async () => {
    const d = (await deliveriesOf(json)).find((x) => x.eventId === secondEvent);
    return d !== undefined && d.attempts >= 1 && d.state === 'pending';
  }, 30_000);
  await farm.coordinator.kill9();
  answers.set('/json', { queue: [], fallback: 200 });
  answers.set('/flaky', { queue: [], fallback: 200 });
  await farm.startCoordinator();
  await waitFor('second event delivered after the restart', async () => {
    const [a, b] = await Promise.all([deliveriesOf(json), deliveriesOf(flaky)]);
    return [a, b].every((ds) => ds.length === 2 && ds.every((d) => d.state === 'delivered'));
  }, 30_000);

  // Every request was signed; each (receiver, event id) was answered 200 exactly once; the first event was never sent again.
  assert.ok(received.every((r) => r.signed), 'every request carries a valid signature');
  for (const path of ['/json', '/flaky']) {
    for (const eventId of [firstEvent, secondEvent]) {
      assert.equal(received.filter((r) => r.path === path && r.eventId === eventId && r.answered === 200).length, 1, `${path} ${eventId} accepted once`);
    }
    assert.equal(received.filter((r) => r.path === path && r.eventId === firstEvent && r.answered !== 200).length, path === '/flaky' ? 3 : 0);
  }
  assert.deepEqual(new Set(received.map((r) => r.eventId)), new Set([firstEvent, secondEvent]));

  // Delete: no more deliveries to it.
  assert.equal((await api(`/api/webhooks/${flaky}`, { method: 'DELETE' })).status, 204);
  const list = await api<{ webhooks: { id: string }[] }>('/api/webhooks');
  assert.deepEqual(list.body.webhooks.map((w) => w.id), [json]);
});

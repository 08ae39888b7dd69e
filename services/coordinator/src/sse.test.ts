/** The per-client SSE queue and the route's client cap, in process. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hono } from 'hono';
import { ClientQueue, eventsRoute } from './sse.js';
import { Live } from './live.js';

test('a slow reader keeps only the newest progress of each job, and a bounded backlog of other events', () => {
  const q = new ClientQueue(3);
  for (let step = 1; step <= 50; step++) q.push({ type: 'progress', sweepId: 's', jobId: 'j1', step, total: 50, preview: 'x'.repeat(1000) });
  q.push({ type: 'progress', sweepId: 's', jobId: 'j2', step: 1, total: 2 });
  for (let i = 0; i < 5; i++) q.push({ type: 'node', nodeId: `n${i}`, status: 'online' });
  q.push({ type: 'sweep', sweepId: 's' });
  const out = q.take();
  assert.deepEqual(out.map((e) => (e.type === 'progress' ? `${e.jobId}@${e.step}` : e.type === 'node' ? e.nodeId : e.type)), ['n2', 'n3', 'n4', 'j1@50', 'j2@1']);
  assert.equal(q.dropped, 2, 'the dropped backlog is counted (the client is told it lagged)');
  assert.deepEqual([...q.dirty], ['s'], 'sweep changes become one snapshot');
  assert.equal(q.empty, true);
});

test('a finished job drops its pending progress', () => {
  const q = new ClientQueue(10);
  q.push({ type: 'progress', sweepId: 's', jobId: 'j1', step: 3, total: 4 });
  q.push({ type: 'job', sweepId: 's', jobId: 'j1', state: 'done' });
  assert.deepEqual(q.take().map((e) => e.type), ['job']);
});

test('the route caps clients with 503 and ends every stream when the service closes', async () => {
  const live = new Live();
  const app = new Hono();
  app.get('/events', eventsRoute({ live, snapshot: () => ({}), maxClients: 2, maxQueue: 10, pingMs: 60_000 }));
  const a = await app.request('/events');
  const b = await app.request('/events');
  assert.deepEqual([a.status, b.status], [200, 200]);
  assert.equal((await app.request('/events')).status, 503);
  live.emit({ type: 'node', nodeId: 'n1', status: 'online' });
  live.close();
  const [ta, tb] = await Promise.all([a.text(), b.text()]);
  assert.match(ta, /event: hello/);
  assert.match(ta, /event: node/);
  assert.match(tb, /event: hello/);
  // Slots free once streams end.
  const c = await app.request('/events');
  assert.equal(c.status, 200);
  assert.match(await c.text(), /event: hello/, 'a stream opened after close ends at once');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { Client } from './client.js';
import type { SweepView } from './format.js';
import { watchSweep } from './watch.js';

const RUNNING: SweepView = {
  id: 'sw-1',
  name: 'x',
  status: 'running',
  priority: 0,
  backend: 'procedural',
  total: 4,
  counts: { queued: 2, running: 2, done: 0, failed: 0, skipped: 0 },
  createdAt: new Date().toISOString(),
  finishedAt: null,
};

test("the caller's abort signal ends a watch instead of Ctrl-C, which is left to the caller", async (t) => {
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/api/events')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      return; // held open, like a sweep that never finishes
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(RUNNING));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const client = new Client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const sigints = process.listenerCount('SIGINT');
  const stop = new AbortController();
  const watching = watchSweep(client, 'sw-1', { out: new PassThrough(), quiet: true, pollMs: 50, signal: stop.signal });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(process.listenerCount('SIGINT'), sigints, 'no SIGINT handler of its own while the caller holds a signal');
  stop.abort(new Error('farm stopping'));
  await assert.rejects(watching, /farm stopping/);
});

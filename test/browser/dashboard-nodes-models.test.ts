/**
 * The nodes page's models cell in headless Chromium against the real
 * dashboard with a stand-in /api/nodes (no farm): the names a node was
 * configured with, the registry models in its cache (the loaded one marked)
 * and a download in progress with its percentage and megabytes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import { serve, type ServerType } from '@hono/node-server';
import type { Browser } from 'playwright-core';
import { seededCoordinator, tempDir, type SeededCoordinator } from '@nightshift/devfarm';
import { createDashboard } from '../../services/coordinator/src/dashboard/index.js';
import { browserMissing, launch, watchPage } from './chromium.js';

const skip = browserMissing();
const LOADED = 'a'.repeat(64);
const CACHED = 'b'.repeat(64);
const COMING = 'c'.repeat(64);

const NODE = {
  id: 'node-3',
  name: 'sd box',
  status: 'online',
  capabilities: { gpuName: 'Test GPU', vramMb: 8192, backends: ['onnx'], models: ['nightshift-tiny-sd'], slots: 1 },
  lastSeen: new Date().toISOString(),
  jobsDone: 3,
  currentJobs: [],
  models: { cached: [LOADED, CACHED], loaded: LOADED, downloads: [{ hash: COMING, name: 'castle-xl', bytesDone: 10 * 1024 * 1024, bytesTotal: 40 * 1024 * 1024 }], bytesPerS: 5e7 },
};

describe('nodes page: registry model cache', { skip, timeout: 120_000 }, () => {
  let tmp: ReturnType<typeof tempDir>;
  let seeded: SeededCoordinator;
  let server: ServerType;
  let browser: Browser;
  let base = '';

  before(async () => {
    tmp = tempDir();
    seeded = seededCoordinator(tmp.dir, { NIGHTSHIFT_INDEXER_URL: 'http://127.0.0.1:9' }, { get: async () => Buffer.from('') });
    const app = new Hono()
      .get('/api/nodes', (c) => c.json({ nodes: [NODE] }))
      .get('/api/events', (c) => c.body('', 200, { 'content-type': 'text/event-stream' }))
      .route('/', createDashboard(seeded.deps));
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
    seeded?.close();
    tmp?.cleanup();
  });

  test('the models cell lists configured names, cached and loaded hashes, and a download with its progress', async () => {
    const page = await browser.newPage();
    const { problems } = watchPage(page);
    await page.goto(`${base}/ui/nodes`);
    const row = page.locator('#nodes-body tr[data-node="node-3"]');
    await row.waitFor();
    const cell = row.locator('td').nth(4);
    assert.equal(await cell.evaluate((td) => td.firstChild?.textContent), 'nightshift-tiny-sd');
    const lines = await cell.locator('.sub').allTextContents();
    assert.deepEqual(lines, ['● aaaaaaaaaaaa (loaded)', 'bbbbbbbbbbbb (cached)', '↓ castle-xl 25% (10.0/40.0 MB)']);
    assert.deepEqual(await cell.locator('.sub').evaluateAll((spans) => spans.map((s) => s.getAttribute('title'))), [LOADED, CACHED, COMING]);
    assert.deepEqual(problems, []);
  });
});

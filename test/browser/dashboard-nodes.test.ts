/**
 * The nodes page in headless Chromium against the real dashboard with a
 * stand-in /api/nodes (no farm): a node's current jobs show as links to
 * their sweeps, and its models cell lists the names it was configured with,
 * the registry models in its cache (the loaded one marked) and a download in
 * progress with its percentage and megabytes. (The farm-wide browser test
 * sees the nodes only while idle.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { browserMissing } from './chromium.js';
import { serveStandInDashboard, type StandInDashboard } from './stand-in-dashboard.js';

const skip = browserMissing();

const NODE = {
  id: 'node-7',
  name: 'gpu box',
  status: 'online',
  capabilities: { gpuName: 'Test GPU', vramMb: 8192, backends: ['procedural'], models: ['procedural-v1'], slots: 4 },
  lastSeen: new Date().toISOString(),
  jobsDone: 12,
  currentJobs: ['sw-aaa-0', 'sw-aaa-1', 'sw-bbb-10', 'sw-bbb-11'],
};

const LOADED = 'a'.repeat(64);
const CACHED = 'b'.repeat(64);
const COMING = 'c'.repeat(64);

/** A node with a registry model cache (issue 14). */
const CACHING_NODE = {
  id: 'node-3',
  name: 'sd box',
  status: 'online',
  capabilities: { gpuName: 'Test GPU', vramMb: 8192, backends: ['onnx'], models: ['nightshift-tiny-sd'], slots: 1 },
  lastSeen: new Date().toISOString(),
  jobsDone: 3,
  currentJobs: [],
  models: { cached: [LOADED, CACHED], loaded: LOADED, downloads: [{ hash: COMING, name: 'castle-xl', bytesDone: 10 * 1024 * 1024, bytesTotal: 40 * 1024 * 1024 }], bytesPerS: 5e7 },
};

describe('nodes page in headless Chromium', { skip, timeout: 120_000 }, () => {
  let dash: StandInDashboard;
  let base = '';

  before(async () => {
    dash = await serveStandInDashboard((app) => app.get('/api/nodes', (c) => c.json({ nodes: [NODE, CACHING_NODE] })));
    base = dash.base;
  });

  after(() => dash?.close());

  test("a node's row shows its capabilities and links its first current jobs to their sweeps", async () => {
    const { page, problems } = await dash.newPage();
    await page.goto(`${base}/ui/nodes`);
    const row = page.locator('#nodes-body tr[data-node="node-7"]');
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    assert.deepEqual(cells.slice(0, 6), ['online', 'Test GPU', '8.0 GB', 'procedural', 'procedural-v1', '4']);
    assert.equal(cells[6], 'sw-aaa-0, sw-aaa-1, sw-bbb-10 +1');
    const links = await row.locator('td').nth(6).locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    assert.deepEqual(links, ['/ui/sweeps/sw-aaa', '/ui/sweeps/sw-aaa', '/ui/sweeps/sw-bbb']);
    assert.match(await page.locator('#nodes-msg').innerText(), /2 of 2 node\(s\) online/);
    assert.deepEqual(problems, []);
  });

  test('the models cell lists configured names, cached and loaded hashes, and a download with its progress', async () => {
    const { page, problems } = await dash.newPage();
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

/**
 * Page weight and time to first render of the dashboard's gallery with
 * 10,000 images, measured in headless Chromium (Debian's chromium through
 * playwright-core).
 *
 * How the 10,000 images are made, honestly: the coordinator's real HTTP app
 * (createHttpApp, dashboard included) runs on a real SQLite database. One
 * sweep of 100 prompts × 100 seeds goes in through the real submitSweep, and
 * its 10,000 jobs are then marked done as a finished render leaves them
 * (image/thumb keys, node, render time). Only two things are stubbed: S3,
 * whose get() returns one of 24 real thumbnails (procedural renders put
 * through the gpu-node's own makeThumbnail, 256 px WebP), and the indexer,
 * which answers GET /api/favorites with 50 favorites. No gpu-node, NATS or
 * scheduler runs. Each run opens a fresh browser context (empty cache).
 *
 *   node --import tsx bench/dashboard-gallery.ts [runs=5] [images=10000]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import { serve, type ServerType } from '@hono/node-server';
import { seededCoordinator, tempDir } from '@nightshift/devfarm';
import { createHttpApp } from '../services/coordinator/src/http.js';
import { Live } from '../services/coordinator/src/live.js';
import type { HttpDeps } from '../services/coordinator/src/deps.js';
import { encodePng, renderProcedural } from '@nightshift/models';
import { makeThumbnail } from '../services/gpu-node/src/thumbnail.js';
import { launch } from '../test/browser/chromium.js';

// Globals of the page, for the callbacks that run inside the browser (the project's tsconfig has no DOM lib).
declare const document: any;  
declare const innerHeight: number;
declare const performance: any;  
declare const PerformanceObserver: any;  

const RUNS = Number(process.argv[2] ?? 5);
const IMAGES = Number(process.argv[3] ?? 10_000);
const COLORS = ['red', 'blue', 'green', 'yellow', 'purple', 'orange', 'pink', 'white', 'black', 'cyan'];
const SHAPES = ['circle', 'square', 'triangle', 'stripes', 'circles', 'squares', 'triangles', 'stripe', 'dots', 'waves'];

function listen(app: { fetch: (r: Request) => Response | Promise<Response> }): Promise<ServerType> {
  return new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
}
const portOf = (s: ServerType) => (s.address() as AddressInfo).port;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

async function main(): Promise<void> {
  const tmp = tempDir('ns-bench-gallery-');
  const thumbs: Buffer[] = [];
  for (let i = 0; i < 24; i++) {
    const img = renderProcedural(`a ${COLORS[i % 10]} ${SHAPES[i % 4]}`, i, 512, 512);
    thumbs.push(await makeThumbnail(await encodePng(img.data, img.width, img.height)));
  }
  const storage = { get: async (key: string) => thumbs[parseInt(key.replace(/^\w+\//, '').slice(0, 6), 16) % thumbs.length]! };

  const favorites: string[] = [];
  const indexer = await listen(new Hono().get('/api/favorites', (c) => c.json({ favorites: favorites.map((renderKey) => ({ renderKey })) })));
  const seeded = seededCoordinator(tmp.dir, { NIGHTSHIFT_INDEXER_URL: `http://127.0.0.1:${portOf(indexer)}` }, storage);
  const prompts = Array.from({ length: 100 }, (_, i) => `a ${COLORS[i % 10]} ${SHAPES[Math.floor(i / 10)]} number ${i}`);
  const t0 = performance.now();
  const sweepId = await seeded.addRenderedSweep({ name: 'ten thousand', prompts, seeds: { start: 0, count: IMAGES / 100 }, params: { width: 512, height: 512, steps: 30 } });
  const seedMs = performance.now() - t0;
  favorites.push(...(seeded.db.prepare('SELECT render_key FROM jobs WHERE sweep_id = ? AND idx % 200 = 0').all(sweepId) as { render_key: string }[]).map((r) => r.render_key));

  const deps: HttpDeps = {
    ...seeded.deps,
    live: new Live(),
    placement: { explain: () => [] },
    hub: { ...seeded.deps.hub, connectedNodeIds: () => [] },
  };
  const server = await listen(createHttpApp(deps));
  const base = `http://127.0.0.1:${portOf(server)}`;

  // Server-side cost of one gallery page (first and last), without the browser.
  const apiMs: Record<string, number[]> = { first: [], last: [] };
  for (let i = 0; i < 5; i++) {
    for (const [name, offset] of [['first', 0], ['last', IMAGES - 120]] as const) {
      const t = performance.now();
      await (await fetch(`${base}/api/gallery?offset=${offset}&limit=120`)).json();
      apiMs[name]!.push(performance.now() - t);
    }
  }

  const browser = await launch();
  const runs: Record<string, number>[] = [];
  let breakdown: Record<string, { count: number; transfer: number }> = {};
  try {
    for (let r = 0; r < RUNS; r++) {
      const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
      // tsx names inner functions with __name(); the evaluated code needs it to exist.
      await context.addInitScript({ content: 'globalThis.__name = (f) => f;' });
      const page = await context.newPage();
      const start = Date.now();
      await page.goto(`${base}/ui/gallery`, { waitUntil: 'load' });
      await page.waitForFunction(() => document.body.dataset.ready === 'gallery');
      // Wait for the thumbnails the first screen asks for, then for the network to settle.
      await page.waitForFunction(() => [...document.querySelectorAll('#gallery-grid img')].filter((i: any) => i.getBoundingClientRect().top < innerHeight).every((i: any) => i.complete));
      await page.waitForLoadState('networkidle');
      const wall = Date.now() - start;
      const m = await page.evaluate(async () => {
        const nav = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource') as any[];
        const fcp = performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN;
        const lcp = await new Promise<number>((resolve) => {
          new PerformanceObserver((list: any) => {
            const e = list.getEntries();
            resolve(e[e.length - 1]!.startTime);
          }).observe({ type: 'largest-contentful-paint', buffered: true });
          setTimeout(() => resolve(NaN), 500);
        });
        const kind = (r: any) =>
          r.name.includes('/ui/files/') ? 'thumbnails' : r.name.endsWith('.css') || r.name.includes('.css?') ? 'css' : r.name.includes('.js') ? 'js' : 'api (json)';
        const parts: Record<string, { count: number; transfer: number }> = { html: { count: 1, transfer: nav.transferSize } };
        for (const r of res) {
          const k = kind(r);
          parts[k] ??= { count: 0, transfer: 0 };
          parts[k].count++;
          parts[k].transfer += r.transferSize;
        }
        const firstScreen = [...document.querySelectorAll('#gallery-grid img')].filter((i) => i.getBoundingClientRect().top < innerHeight);
        const visible = firstScreen.length;
        const srcs = new Set(firstScreen.map((i) => i.src));
        const thumbsDone = Math.max(...res.filter((r) => srcs.has(r.name)).map((r) => r.responseEnd));
        return {
          ttfb: nav.responseStart,
          domContentLoaded: nav.domContentLoadedEventEnd,
          fcp,
          galleryRendered: performance.getEntriesByName('nightshift:gallery-rendered')[0]?.startTime ?? NaN,
          thumbsDone,
          lcp,
          transfer: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0),
          decoded: nav.decodedBodySize + res.reduce((s, r) => s + r.decodedBodySize, 0),
          requests: res.length + 1,
          domNodes: document.getElementsByTagName('*').length,
          cards: document.querySelectorAll('#gallery-grid .card').length,
          visible,
          parts,
        };
      });
      breakdown = m.parts;
      const { parts: _parts, ...nums } = m;
      runs.push({ ...nums, wall });
      await context.close();
    }

    // The last page (offset 9,880) through the UI as well.
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/ui/gallery?page=${Math.ceil(IMAGES / 120)}`);
    await page.waitForFunction(() => document.body.dataset.ready === 'gallery');
    const lastPage = await page.evaluate(() => ({
      galleryRendered: performance.getEntriesByName('nightshift:gallery-rendered')[0]?.startTime ?? NaN,
      status: document.getElementById('gallery-status')!.textContent,
      pager: document.getElementById('pager')!.textContent,
    }));
    await context.close();

    // The same 10,000 renders as one sweep's contact sheet (every job a tile, no paging).
    const sheetRuns: { rendered: number; jobsJson: number; tiles: number }[] = [];
    for (let r = 0; r < Math.min(RUNS, 3); r++) {
      const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 } });
      const p = await ctx.newPage();
      await p.goto(`${base}/ui/sweeps/${sweepId}`);
      await p.waitForFunction((n) => document.querySelectorAll('.tile').length === n, IMAGES, { timeout: 60_000 });
      await p.waitForFunction(() => performance.getEntriesByName('nightshift:sheet-rendered').length > 0);
      sheetRuns.push(
        await p.evaluate(() => {
          const jobs = (performance.getEntriesByType('resource') as any[]).find((e) => e.name.endsWith('/jobs'));
          return {
            rendered: performance.getEntriesByName('nightshift:sheet-rendered')[0]!.startTime,
            jobsJson: jobs?.transferSize ?? NaN,
            tiles: document.querySelectorAll('.tile').length,
          };
        }),
      );
      await ctx.close();
    }
    const contactSheet = { renderedMs: median(sheetRuns.map((x) => x.rendered)), jobsJsonBytes: median(sheetRuns.map((x) => x.jobsJson)), tiles: sheetRuns[0]?.tiles };

    const med = (k: string) => median(runs.map((x) => x[k]!));
    const result = {
      images: IMAGES,
      runs: RUNS,
      seedMs: Math.round(seedMs),
      medianMs: {
        ttfb: med('ttfb'),
        firstContentfulPaint: med('fcp'),
        galleryRendered: med('galleryRendered'),
        largestContentfulPaint: med('lcp'),
        domContentLoaded: med('domContentLoaded'),
        firstScreenOfThumbnailsLoaded: med('thumbsDone'),
      },
      pageWeight: { transferBytes: med('transfer'), decodedBytes: med('decoded'), requests: med('requests'), breakdown },
      dom: { nodes: med('domNodes'), cards: med('cards'), thumbnailsInFirstScreen: med('visible') },
      api: { firstPageMs: median(apiMs.first!), lastPageMs: median(apiMs.last!) },
      lastPage,
      contactSheet,
      browser: browser.version(),
    };
    console.log(`Gallery with ${IMAGES.toLocaleString('en-US')} images (${RUNS} runs, median, fresh cache each, Chromium ${result.browser}, 1366×900):`);
    console.log(`  first contentful paint   ${result.medianMs.firstContentfulPaint.toFixed(0)} ms`);
    console.log(`  gallery grid rendered    ${result.medianMs.galleryRendered.toFixed(0)} ms  (120 cards in the DOM, from navigation start)`);
    console.log(`  largest contentful paint ${result.medianMs.largestContentfulPaint.toFixed(0)} ms`);
    console.log(`  first screen of thumbs   ${result.medianMs.firstScreenOfThumbnailsLoaded.toFixed(0)} ms  (the last thumbnail of the first screen arrived)`);
    console.log(`  page weight              ${kb(result.pageWeight.transferBytes)} transferred (${kb(result.pageWeight.decodedBytes)} decoded), ${result.pageWeight.requests} requests`);
    for (const [k, v] of Object.entries(breakdown)) console.log(`    ${k.padEnd(12)} ${String(v.count).padStart(3)} × → ${kb(v.transfer)}`);
    console.log(`  DOM                      ${result.dom.nodes} elements, ${result.dom.cards} cards, ${result.dom.thumbnailsInFirstScreen} thumbnails in the first screen (others lazy)`);
    console.log(`  GET /api/gallery         first page ${result.api.firstPageMs.toFixed(1)} ms, last page ${result.api.lastPageMs.toFixed(1)} ms (server + loopback)`);
    console.log(`  last page via the UI     rendered at ${lastPage.galleryRendered.toFixed(0)} ms — "${lastPage.pager}"`);
    console.log(`  contact sheet, ${contactSheet.tiles} tiles: rendered at ${contactSheet.renderedMs.toFixed(0)} ms; its job list is ${kb(contactSheet.jobsJsonBytes)} of JSON`);
    console.log(`  (seeding ${IMAGES} images through submitSweep took ${result.seedMs} ms)`);
    mkdirSync('test-artifacts/bench', { recursive: true });
    writeFileSync('test-artifacts/bench/dashboard-gallery.json', `${JSON.stringify({ ...result, runsRaw: runs }, null, 2)}\n`);
    // Machine-readable summary, last line (bench/ convention); the raw runs are in the file above.
    console.log(JSON.stringify({ bench: 'dashboard-gallery', ...result }));
  } finally {
    await browser.close();
    await new Promise((r) => server.close(r));
    await new Promise((r) => indexer.close(r));
    seeded.close();
    tmp.cleanup();
  }
}

await main();

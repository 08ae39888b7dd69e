/**
 * The real dashboard served with stand-in API routes (no farm), for pages
 * whose data is easier to set than to produce: the test's routes come
 * first, then /api/events (an empty stream), /api/me (the local admin, as on
 * a farm without users) and the dashboard itself; Chromium is launched.
 */
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import { serve, type ServerType } from '@hono/node-server';
import type { Browser, Page } from 'playwright-core';
import { seededCoordinator, tempDir, type SeededCoordinator } from '@nightshift/devfarm';
import { createDashboard } from '../../services/coordinator/src/dashboard/index.js';
import { launch, watchPage } from './chromium.js';

export interface StandInDashboard {
  /** http://127.0.0.1:port */
  base: string;
  browser: Browser;
  /** A fresh page with its problems collected (watchPage). */
  newPage(): Promise<{ page: Page; problems: string[] }>;
  /** Closes the browser and the server, the store and the temp dir. */
  close(): Promise<void>;
}

export async function serveStandInDashboard(routes: (app: Hono) => Hono): Promise<StandInDashboard> {
  const tmp = tempDir();
  let seeded: SeededCoordinator | undefined;
  let server: ServerType | undefined;
  let browser: Browser | undefined;
  const close = async () => {
    await browser?.close();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    seeded?.close();
    tmp.cleanup();
  };
  try {
    // The indexer's address answers nothing: these pages never reach it.
    seeded = seededCoordinator(tmp.dir, { NIGHTSHIFT_INDEXER_URL: 'http://127.0.0.1:9' }, { get: async () => Buffer.from('') });
    const app = routes(new Hono())
      .get('/api/events', (c) => c.body('', 200, { 'content-type': 'text/event-stream' }))
      // The header asks who this is (whoami.js).
      .get('/api/me', (c) => c.json({ user: 'local', admin: true, quota: null }))
      .route('/', createDashboard(seeded.deps));
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const b = await launch();
    browser = b;
    const newPage = async () => {
      const page = await b.newPage();
      return { page, problems: watchPage(page).problems };
    };
    return { base, browser: b, newPage, close };
  } catch (err) {
    await close();
    throw err;
  }
}

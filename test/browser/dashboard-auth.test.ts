/**
 * The dashboard behind NIGHTSHIFT_API_TOKEN, in headless Chromium: it asks
 * for the token once (and again only if it is refused), keeps it in
 * localStorage, sends it as a header on fetches and on the fetch-based SSE
 * stream, and shows images through a short-lived HttpOnly cookie that opens
 * only /ui/files — the token never appears in a URL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { browserMissing, screenshot, watchPage } from './chromium.js';
import { openFarmBrowser, type FarmBrowser } from './farm-page.js';

// Globals of the page, for the callbacks that run inside the browser (the project's tsconfig has no DOM lib).
declare const document: any;  
declare const localStorage: any;  

const skip = browserMissing();
const TOKEN = 'browser-test-token-5f2c9a';

describe('dashboard with an API token', { skip, timeout: 240_000 }, () => {
  let fb: FarmBrowser;
  let farm: FarmBrowser['farm'];
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const urls: string[] = [];
  const auth = { authorization: `Bearer ${TOKEN}` };

  before(async () => {
    fb = await openFarmBrowser({ nodes: 1, indexer: false, env: { NIGHTSHIFT_API_TOKEN: TOKEN, NIGHTSHIFT_NODE_TOKEN: 'node-token-for-the-test' }, headers: auth });
    ({ farm, browser } = fb);
    context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    page = await context.newPage();
    page.on('request', (r) => urls.push(r.url()));
  });

  after(() => fb?.close());

  test('the API and images refuse requests without the token; the pages themselves hold no data', async () => {
    assert.equal((await fetch(`${farm.apiUrl}/api/sweeps`)).status, 401);
    assert.equal((await fetch(`${farm.apiUrl}/api/gallery`)).status, 401);
    assert.equal((await fetch(`${farm.apiUrl}/ui/files/thumbs/${'a'.repeat(64)}.webp`)).status, 401);
    assert.equal((await fetch(`${farm.apiUrl}/ui/session`, { method: 'POST', headers: { authorization: 'Bearer wrong' } })).status, 401);
    const html = await fetch(`${farm.apiUrl}/ui/`);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  });

  test('asks for the token once, re-asks when it is refused, then shows live data and images', async () => {
    const { problems } = watchPage(page);
    const submitted = (await (
      await fetch(`${farm.apiUrl}/api/sweeps`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'behind a token', prompts: ['a green triangle'], seeds: { start: 0, count: 6 }, params: { width: 128, height: 128, steps: 30 } }),
      })
    ).json()) as { id: string };

    await page.goto(`${farm.apiUrl}/ui/sweeps/${submitted.id}`);
    const dialog = page.locator('#auth-dialog');
    await dialog.waitFor({ state: 'visible' });
    await screenshot(page, 'auth-dialog');
    await page.fill('#auth-token', 'not-the-token');
    await page.press('#auth-token', 'Enter');
    await page.locator('#auth-error').filter({ hasText: 'refused' }).waitFor();
    await page.fill('#auth-token', TOKEN);
    await page.press('#auth-token', 'Enter');
    await dialog.waitFor({ state: 'hidden' });

    // Live over the fetch-based SSE reader, tiles end with thumbnails served through the cookie.
    await page.locator('#live').filter({ hasText: 'live' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('.tile[data-state="done"][data-img="thumb"]').length === 6, null, { timeout: 60_000 });
    await page.waitForFunction(() => [...document.querySelectorAll('.tile img')].every((i: any) => i.complete && i.naturalWidth > 0), null, { timeout: 30_000 });
    await screenshot(page, 'auth-sweep');

    const stored = await page.evaluate(() => localStorage.getItem('nightshift.apiToken'));
    assert.equal(stored, TOKEN);
    const cookies = await context.cookies();
    const files = cookies.find((c) => c.name === 'nightshift_files');
    assert.ok(files, 'no image cookie was set');
    assert.equal(files.httpOnly, true);
    assert.equal(files.sameSite, 'Strict');
    assert.equal(files.path, '/ui/files');
    assert.ok(!files.value.includes(TOKEN));
    assert.equal(await page.evaluate(() => document.cookie), '', 'scripts must not see the image cookie');
    // The cookie opens images only: the API still wants the header.
    assert.equal(await page.evaluate(async () => (await fetch('/api/sweeps')).status), 401);
    assert.deepEqual(problems.filter((p) => !/status of 401/.test(p)), []);
  });

  test('a reload does not ask again, and the token never appears in a URL', async () => {
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('.tile[data-img="thumb"]').length === 6, null, { timeout: 30_000 });
    assert.equal(await page.locator('#auth-dialog').isVisible(), false);
    await page.goto(`${farm.apiUrl}/ui/gallery`);
    await page.locator('#gallery-status').filter({ hasText: '6 images' }).waitFor();
    assert.equal(await page.locator('#forget-token').isVisible(), true);
    assert.ok(urls.length > 10);
    assert.deepEqual(urls.filter((u) => u.includes(TOKEN)), []);
  });
});

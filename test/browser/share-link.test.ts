/**
 * Share links end to end on a real farm behind an API token (coordinator,
 * gpu-node, indexer, S3, NATS): favorites shared with POST /api/shares open
 * in a fresh Chromium context that has no token and no cookie, showing
 * exactly the starred images, every one loading; the link's token opens
 * nothing of the API; a revoked link and an expired one answer 404.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import AdmZip from 'adm-zip';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { waitFor } from '@nightshift/devfarm';
import { browserMissing, screenshot, watchPage } from './chromium.js';
import { openFarmBrowser, type FarmBrowser } from './farm-page.js';

/** The page's globals as these checks use them (the tests compile without the DOM library). */
interface PageImage {
  complete: boolean;
  naturalWidth: number;
  getAttribute(name: string): string | null;
}
declare const localStorage: { setItem(key: string, value: string): void };
declare const document: { images: PageImage[] & Iterable<PageImage>; querySelectorAll(sel: string): Iterable<{ href: string }> };

const skip = browserMissing();
const TOKEN = 'share-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

interface Share {
  id: string;
  url: string;
  expiresAt: string;
  images: number;
}

describe('share links, in headless Chromium without the API token', { skip, timeout: 300_000 }, () => {
  let fb: FarmBrowser;
  let farm: FarmBrowser['farm'];
  let tmp: FarmBrowser['tmp'];
  let browser: Browser;
  let stranger: BrowserContext;
  let page: Page;
  let images: { key: string; renderKey: string; prompt: string }[] = [];
  let starred: typeof images = [];
  let sweepId = '';

  const api = async (method: string, path: string, body?: unknown) =>
    fetch(`${farm.apiUrl}${path}`, { method, headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const share = async (body: unknown): Promise<Share> => {
    const res = await api('POST', '/api/shares', body);
    assert.equal(res.status, 201, await res.clone().text());
    return (await res.json()) as Share;
  };

  before(async () => {
    fb = await openFarmBrowser({ nodes: 1, indexer: true, env: { NIGHTSHIFT_API_TOKEN: TOKEN, NIGHTSHIFT_NODE_TOKEN: 'share-node-token' }, headers: auth });
    ({ farm, tmp, browser } = fb);
    const res = await api('POST', '/api/sweeps', { name: 'to share', prompts: ['a yellow circle', 'a blue square', 'red stripes'], seeds: { count: 2 }, params: { width: 64, height: 64, steps: 2 } });
    assert.equal(res.status, 201);
    const { id } = (await res.json()) as { id: string };
    sweepId = id;
    await waitFor('the sweep to finish', async () => ((await (await api('GET', `/api/sweeps/${id}`)).json()) as { status: string }).status === 'done', 120_000, 200);
    images = ((await (await api('GET', `/api/sweeps/${id}/images`)).json()) as { images: typeof images }).images;
    assert.equal(images.length, 6);
    // Star three; the indexer takes a star once it has indexed the image.
    starred = [images[0]!, images[3]!, images[4]!];
    for (const img of starred) await waitFor(`star ${img.key}`, async () => (await api('PUT', `/api/favorites/${encodeURIComponent(img.key)}`)).status === 200, 120_000, 250);
    // A stranger: no token in storage, no image cookie, nothing but the link.
    stranger = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    page = await stranger.newPage();
  });

  after(() => fb?.close());

  test('the link shows exactly the starred images, every one loading, and opens nothing else', async () => {
    const s = await share({ favorites: true, expiresIn: '1h' });
    assert.equal(s.images, 3);
    const { problems } = watchPage(page);
    const res = await page.goto(s.url);
    assert.equal(res?.status(), 200);
    await page.waitForFunction(() => [...document.images].every((i) => i.complete));
    const shown = await page.evaluate(() => [...document.images].map((i) => ({ src: i.getAttribute('src') ?? '', width: i.naturalWidth })));
    assert.deepEqual(shown.map((i) => /^thumbs\/([0-9a-f]{64})\.webp$/.exec(i.src)?.[1]).sort(), starred.map((i) => i.renderKey).sort());
    assert.ok(shown.every((i) => i.width > 0), JSON.stringify(shown));
    assert.deepEqual((await page.locator('.prompt').allInnerTexts()).sort(), starred.map((i) => i.prompt).sort());
    await screenshot(page, 'share-page');
    const full = await page.evaluate(() => [...document.querySelectorAll('a.full')].map((a) => a.href));
    assert.equal(full.length, 3);
    for (const href of full) {
      await page.goto(href);
      assert.ok((await page.evaluate(() => document.images[0]?.naturalWidth ?? 0)) > 0, href);
    }
    await page.goto(s.url);

    // With the link's token as a bearer or without: no API, no other image.
    const linkToken = /\/s\/([^/]+)\/$/.exec(s.url)![1]!;
    const notShared = images.find((i) => !starred.includes(i))!;
    const asks: [string, string, string | null][] = [
      ['sweeps', '/api/sweeps', linkToken],
      ['shares', '/api/shares', linkToken],
      ['search', '/api/search?q=circle', linkToken],
      ['files', `/files/${starred[0]!.key}`, linkToken],
      ['filesBare', `/files/${starred[0]!.key}`, null],
      ['notShared', `images/${notShared.renderKey}.png`, null],
      ['notSharedThumb', `thumbs/${notShared.renderKey}.webp`, null],
    ];
    // Asked with the stranger's own cookie jar (the page itself may fetch nothing: its CSP has no connect-src).
    const statuses: Record<string, number> = {};
    for (const [name, path, bearer] of asks) {
      statuses[name] = (await stranger.request.get(new URL(path, s.url).href, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} })).status();
    }
    assert.deepEqual(statuses, { sweeps: 401, shares: 401, search: 401, files: 401, filesBare: 401, notShared: 404, notSharedThumb: 404 });
    assert.deepEqual(problems.filter((p) => !/status of 40[14]/.test(p)), []);
  });

  test('a revoked link answers 404 at once', async () => {
    const s = await share({ keys: [starred[0]!.key], expiresIn: 3600 });
    assert.equal((await page.goto(s.url))?.status(), 200);
    assert.equal((await api('DELETE', `/api/shares/${s.id}`)).status, 204);
    const res = await page.goto(s.url);
    assert.equal(res?.status(), 404);
    assert.match(await page.locator('body').innerText(), /expired, been revoked, or never existed/);
    assert.equal((await page.goto(`${s.url}thumbs/${starred[0]!.renderKey}.webp`))?.status(), 404);
  });

  test('an expired link answers 404; one made with it for longer still opens', async () => {
    const short = await share({ keys: [starred[1]!.key], expiresIn: 10 });
    const long = await share({ keys: [starred[1]!.key], expiresIn: '1d' });
    const expiresAt = Date.parse(short.expiresAt);
    // Waits for the expiry itself (a clock event), then asks once.
    await waitFor('the short link to expire', () => Date.now() > expiresAt, 30_000, 250);
    assert.equal((await page.goto(short.url))?.status(), 404);
    assert.equal((await page.goto(`${short.url}images/${starred[1]!.renderKey}.png`))?.status(), 404);
    assert.equal((await page.goto(long.url))?.status(), 200);
    const listed = ((await (await api('GET', '/api/shares')).json()) as { shares: { id: string; expired: boolean }[] }).shares;
    assert.equal(listed.find((x) => x.id === short.id)?.expired, true);
    assert.equal(listed.find((x) => x.id === long.id)?.expired, false);
  });

  test('the dashboard downloads the album and makes a link the stranger can open', async () => {
    const owner = await browser.newContext({ viewport: { width: 1200, height: 900 }, acceptDownloads: true });
    await owner.addInitScript((t) => localStorage.setItem('nightshift.apiToken', t), TOKEN);
    const dash = await owner.newPage();
    const { problems } = watchPage(dash);
    await dash.goto(`${farm.apiUrl}/ui/sweeps/${sweepId}`);
    const [download] = await Promise.all([dash.waitForEvent('download'), dash.locator('#album-download').click()]);
    assert.equal(download.suggestedFilename(), 'to-share.zip');
    const zipPath = join(tmp.dir, 'dashboard-album.zip');
    await download.saveAs(zipPath);
    const names = new AdmZip(zipPath).getEntries().map((e) => e.entryName);
    assert.deepEqual(names.filter((n) => n.startsWith('thumbs/')).sort(), images.map((i) => `thumbs/${i.renderKey}.webp`).sort());
    assert.ok(names.includes('index.html'));

    await dash.locator('#share-expiry').selectOption('1d');
    await dash.locator('#share-make').click();
    const url = await dash.locator('#share-url').inputValue();
    assert.match(url, /\/s\/v1\.sh_/);
    await dash.locator('#album-share .msg', { hasText: 'these 6 image(s)' }).waitFor();
    assert.equal((await page.goto(url))?.status(), 200);
    await page.waitForFunction(() => [...document.images].every((i) => i.complete));
    assert.equal((await page.evaluate(() => [...document.images].filter((i) => i.naturalWidth > 0).length)), 6);
    await screenshot(dash, 'sweep-share');
    await dash.locator('#album-share button', { hasText: 'Revoke' }).click();
    await dash.locator('#album-share .msg', { hasText: 'Link revoked' }).waitFor();
    assert.equal((await page.goto(url))?.status(), 404);
    assert.deepEqual(problems, []);
    await owner.close();
  });
});

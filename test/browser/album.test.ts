/**
 * `nightshift album` end to end: a real farm (one gpu-node that renders and
 * upscales, behind an API token), the CLI writing an album folder and a .zip
 * of a sweep, then the folder opened from file:// in headless Chromium with
 * no server involved: every thumbnail loads, every "Full image" and
 * "Upscaled ×4" link opens an image, and a hostile prompt stays text.
 * Albums of favorites and of a text search hold exactly those images.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import AdmZip from 'adm-zip';
import type { Browser } from 'playwright-core';
import { main } from '@nightshift/cli';
import { ensureTinyUpscaler } from '@nightshift/models';
import { waitFor } from '@nightshift/devfarm';
import { browserMissing, screenshot, watchPage } from './chromium.js';
import { openFarmBrowser, type FarmBrowser } from './farm-page.js';

/** The page's globals as these checks use them (the tests compile without the DOM library). */
interface PageImage {
  complete: boolean;
  naturalWidth: number;
}
declare const document: { images: PageImage[] & Iterable<PageImage>; querySelectorAll(sel: string): Iterable<{ href: string }> };

const skip = browserMissing();
const TOKEN = 'album-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const HOSTILE = 'a red circle <img src=x onerror="document.title=\'pwned\'"> & "quotes"';

describe('nightshift album, opened from file:// in headless Chromium', { skip, timeout: 300_000 }, () => {
  let fb: FarmBrowser;
  let farm: FarmBrowser['farm'];
  let tmp: FarmBrowser['tmp'];
  let browser: Browser;
  let sweepId = '';
  let images: { key: string; renderKey: string; prompt: string }[] = [];

  const api = async <T>(path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${farm.apiUrl}${path}`, body === undefined ? { headers: auth } : { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.ok(res.ok, `${path}: ${res.status} ${await res.clone().text()}`);
    return (await res.json()) as T;
  };
  const finished = (id: string) => waitFor(`sweep ${id} done`, async () => (await api<{ status: string }>(`/api/sweeps/${id}`)).status === 'done', 120_000, 200);
  const cli = async (...args: string[]) => {
    let out = '';
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) });
    const code = await main(['node', 'nightshift', '--url', farm.apiUrl, '--token', TOKEN, ...args], { out: sink, err: sink, env: {} });
    return { code, out };
  };

  before(async () => {
    fb = await openFarmBrowser({
      nodes: 1,
      indexer: true,
      env: { NIGHTSHIFT_API_TOKEN: TOKEN, NIGHTSHIFT_NODE_TOKEN: 'album-node-token' },
      headers: auth,
      prepare: async (dir) => {
        const model = await ensureTinyUpscaler(join(dir, 'models'));
        const config = join(dir, 'node.yaml');
        writeFileSync(config, `upscale:\n  model: ${model}\n  tileSize: 32\n  overlap: 8\n`);
        return { nodeEnv: (): Record<string, string> => ({ NIGHTSHIFT_NODE_CONFIG: config }) };
      },
    });
    ({ farm, tmp, browser } = fb);
    sweepId = (await api<{ id: string }>('/api/sweeps', { name: 'album night', prompts: [HOSTILE, 'a blue square'], seeds: { count: 2 }, params: { width: 64, height: 64, steps: 2 } })).id;
    await finished(sweepId);
    images = (await api<{ images: typeof images }>(`/api/sweeps/${sweepId}/images`)).images;
    assert.equal(images.length, 4);
    // One image upscaled, so the album has an "Upscaled ×4" link.
    await finished((await api<{ id: string }>('/api/upscale', { keys: [images[0]!.key] })).id);
  });

  after(() => fb?.close());

  test('the folder opens from file:// with every image loading', async () => {
    const out = join(tmp.dir, 'album');
    const run = await cli('album', sweepId, out);
    assert.equal(run.code, 0, run.out);
    assert.match(run.out, /album "album night": 4 image\(s\), 1 upscaled/);
    assert.deepEqual(readdirSync(out).sort(), ['album.json', 'images', 'index.html', 'thumbs', 'upscaled']);
    assert.equal(readdirSync(join(out, 'upscaled')).length, 1);

    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const { problems } = watchPage(page);
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(join(out, 'index.html')).href);
    // Every <img> finished and decoded: naturalWidth is 0 for a broken or missing one.
    await page.waitForFunction(() => [...document.images].every((i) => i.complete));
    const widths = await page.evaluate(() => [...document.images].map((i) => i.naturalWidth));
    assert.equal(widths.length, 4, 'one thumbnail per image, nothing injected by the prompt');
    assert.ok(widths.every((w) => w > 0), `widths ${widths.join(', ')}`);
    assert.ok(requests.every((u) => u.startsWith('file://')), `only files were asked for: ${requests.filter((u) => !u.startsWith('file://')).join(', ')}`);
    assert.notEqual(await page.title(), 'pwned');
    const prompts = await page.locator('.prompt').allInnerTexts();
    assert.deepEqual(prompts.sort(), images.map((i) => i.prompt).sort(), 'prompts shown as text, exactly');
    assert.ok((await page.locator('figcaption').first().innerText()).includes('steps'), 'settings shown');
    await screenshot(page, 'album-file');

    // Every full and upscaled link opens an image from the folder.
    const links = await page.evaluate(() => [...document.querySelectorAll('a.full, a.upscaled')].map((a) => a.href));
    assert.equal(links.length, 4 + 1);
    for (const href of links) {
      await page.goto(href);
      const w = await page.evaluate(() => (document.images[0] ? document.images[0].naturalWidth : 0));
      assert.ok(w > 0, `${href} shows an image`);
    }
    const upscaled = links.find((l) => l.includes('/upscaled/'))!;
    await page.goto(upscaled);
    assert.equal(await page.evaluate(() => document.images[0]!.naturalWidth), 64 * 4);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('--zip holds the same album as the folder', async () => {
    const run = await cli('album', sweepId, join(tmp.dir, 'night'), '--zip');
    assert.equal(run.code, 0, run.out);
    const zip = new AdmZip(join(tmp.dir, 'night.zip'));
    const names = zip.getEntries().map((e) => e.entryName).sort();
    const folder = join(tmp.dir, 'album');
    const expected = ['album.json', 'index.html', ...['images', 'thumbs', 'upscaled'].flatMap((d) => readdirSync(join(folder, d)).map((f) => `${d}/${f}`))].sort();
    assert.deepEqual(names, expected);
    for (const name of expected.filter((n) => n !== 'album.json' && n !== 'index.html')) assert.ok(zip.readFile(name)!.equals(readFileSync(join(folder, name))), name);
  });

  test('--favorites and --query take exactly the starred and the found images', async () => {
    const starred = [images[1]!, images[2]!];
    for (const img of starred) {
      await waitFor(`star ${img.key}`, async () => (await fetch(`${farm.apiUrl}/api/favorites/${encodeURIComponent(img.key)}`, { method: 'PUT', headers: auth })).status === 200, 120_000, 250);
    }
    const favs = await cli('album', '--favorites', join(tmp.dir, 'favs'));
    assert.equal(favs.code, 0, favs.out);
    const favAlbum = JSON.parse(readFileSync(join(tmp.dir, 'favs', 'album.json'), 'utf8')) as { title: string; images: { renderKey: string }[] };
    assert.equal(favAlbum.title, 'Favorites');
    assert.deepEqual(favAlbum.images.map((i) => i.renderKey).sort(), starred.map((i) => i.renderKey).sort());

    const found = await api<{ results: { renderKey: string }[] }>('/api/search?q=square&k=3');
    assert.equal(found.results.length, 3);
    const searched = await cli('album', '--query', 'square', '-k', '3', join(tmp.dir, 'squares'));
    assert.equal(searched.code, 0, searched.out);
    const searchAlbum = JSON.parse(readFileSync(join(tmp.dir, 'squares', 'album.json'), 'utf8')) as { title: string; images: { renderKey: string }[] };
    assert.equal(searchAlbum.title, 'Search: square');
    assert.deepEqual(searchAlbum.images.map((i) => i.renderKey), found.results.map((r) => r.renderKey), 'in the search\'s order');
  });

  test('refuses a folder that is not empty, and an album of nothing', async () => {
    const again = await cli('album', sweepId, join(tmp.dir, 'album'));
    assert.equal(again.code, 2);
    assert.match(again.out, /already exists and is not empty/);
    const none = await cli('album', 'sw_missing', join(tmp.dir, 'none'));
    assert.equal(none.code, 1);
    assert.match(none.out, /no such sweep: sw_missing/);
  });
});

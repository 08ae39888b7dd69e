/**
 * "Best of this sweep" on the sweep page, in headless Chromium against a real
 * farm: the taste model's ranking through the coordinator's proxy to the
 * indexer. Below 10 favorites the button's note asks for more stars; with
 * 10 it shows the sweep's images best first, the starred colour on top; the
 * gallery's "Likely favorites" sort does the same over every image.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserMissing, screenshot } from './chromium.js';
import { openFarmPage, submitAndWaitIndexed, type FarmPage, type IndexedImage } from './farm-page.js';

const skip = browserMissing();

describe('best of this sweep, in headless Chromium', { skip, timeout: 300_000 }, () => {
  let fp: FarmPage;
  let farm: FarmPage['farm'];
  let page: Page;
  let problems: string[];
  let sweepId = '';
  let images: IndexedImage[] = [];

  before(async () => {
    fp = await openFarmPage({ nodes: 1, indexer: true });
    ({ farm, page, problems } = fp);
    // 4 prompts × 8 seeds = 32 small images; a quarter yellow.
    const spec = { name: 'taste', prompts: ['a yellow circle', 'a blue square', 'red stripes', 'a green triangle'], seeds: { start: 1, count: 8 }, params: { width: 64, height: 64, steps: 2 }, backend: 'procedural' };
    // Every image indexed: the indexer's search sees all 32 in the sweep.
    ({ id: sweepId, images } = await submitAndWaitIndexed(farm.apiUrl, spec, 32));
  });

  after(() => fp?.close());

  const star = async (key: string) => assert.equal((await fetch(`${farm.apiUrl}/api/favorites/${encodeURIComponent(key)}`, { method: 'PUT' })).status, 200);
  const yellow = () => images.filter((i) => i.prompt.includes('yellow'));
  const others = () => images.filter((i) => !i.prompt.includes('yellow'));

  test('below 10 favorites the note asks for more stars', async () => {
    for (const img of yellow().slice(0, 7)) await star(img.key);
    await page.goto(`${farm.apiUrl}/ui/sweeps/${sweepId}`);
    await page.locator('#best-load').click();
    await page.locator('#best-note', { hasText: 'Star 3 more images' }).waitFor();
    assert.equal(await page.locator('#best-strip .best-tile').count(), 0);
  });

  test('with 10 favorites the strip shows 12 images, best first, the starred colour on top', async () => {
    // 8 yellow images exist: star them all, plus 2 that are not yellow (a person is not perfectly consistent).
    for (const img of [...yellow().slice(7), ...others().slice(0, 2)]) await star(img.key);
    await page.locator('#best-load').click();
    await page.locator('#best-note', { hasText: 'Learned from 10 favorites' }).waitFor();
    const tiles = page.locator('#best-strip .best-tile');
    assert.equal(await tiles.count(), 12);
    const titles = await tiles.evaluateAll((els) => els.map((e) => e.getAttribute('title') ?? ''));
    const scores = titles.map((t) => Number(/score ([\d.]+)/.exec(t)![1]));
    for (let i = 1; i < scores.length; i++) assert.ok(scores[i - 1]! >= scores[i]!, `best first: ${scores.join(', ')}`);
    // The API's own answer names the keys: the top 8 are the yellow images.
    const best = (await (await fetch(`${farm.apiUrl}/api/sweeps/${sweepId}/best?k=8`)).json()) as { results: { key: string }[]; scoredBy: string };
    assert.equal(best.scoredBy, 'taste');
    const yellowKeys = new Set(yellow().map((i) => i.key));
    assert.ok(best.results.filter((r) => yellowKeys.has(r.key)).length >= 7, 'the yellow images lead');
    await screenshot(page, 'sweep-best');
  });

  test('the gallery sorted by "Likely favorites" puts the starred colour first', async () => {
    await page.goto(`${farm.apiUrl}/ui/gallery`);
    await page.locator('#g-sort').selectOption('likely');
    await page.locator('#gallery-form button[type=submit]').click();
    await page.waitForURL(/sort=likely/);
    await page.locator('#gallery-status', { hasText: 'Likely favorites' }).waitFor();
    const caps = await page.locator('#gallery-grid .card .cap').allInnerTexts();
    assert.equal(caps.length, 32);
    assert.ok(caps.slice(0, 8).filter((c) => c.includes('yellow')).length >= 7, caps.slice(0, 8).join(' | '));
    assert.equal(await page.locator('#g-sort').inputValue(), 'likely', 'the choice survives the reload');
    await screenshot(page, 'gallery-likely');
    // The one 409 was asked for on purpose (the first test).
    assert.deepEqual(problems.filter((p) => !/status of 409/.test(p)), []);
  });
});

/**
 * "Likely favorites" before any star, in headless Chromium against a real
 * farm whose indexer has the built-in aesthetic head
 * (NIGHTSHIFT_AESTHETIC_MODEL=nightshift-tiny-aesthetic, which likes yellow):
 * the gallery sort and the sweep page's best strip say the head ranked, and
 * the yellow images come first; through the coordinator's proxy.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserMissing, screenshot } from './chromium.js';
import { openFarmPage, submitAndWaitIndexed, type FarmPage } from './farm-page.js';

const skip = browserMissing();

describe('likely favorites by the aesthetic head, in headless Chromium', { skip, timeout: 300_000 }, () => {
  let fp: FarmPage;
  let farm: FarmPage['farm'];
  let page: Page;
  let problems: string[];
  let sweepId = '';

  before(async () => {
    fp = await openFarmPage({ nodes: 1, indexer: true, env: { NIGHTSHIFT_AESTHETIC_MODEL: 'nightshift-tiny-aesthetic' } });
    ({ farm, page, problems } = fp);
    // 4 prompts × 4 seeds = 16 small images; a quarter yellow.
    const spec = { name: 'pretty', prompts: ['a blue square', 'a yellow circle', 'red stripes', 'a green triangle'], seeds: { start: 1, count: 4 }, params: { width: 64, height: 64, steps: 2 }, backend: 'procedural' };
    sweepId = (await submitAndWaitIndexed(farm.apiUrl, spec, 16)).id;
  });

  after(() => fp?.close());

  test('the sweep page\'s best strip: scored by the aesthetic head, the yellow images first', async () => {
    await page.goto(`${farm.apiUrl}/ui/sweeps/${sweepId}`);
    await page.locator('#best-load').click();
    await page.locator('#best-note', { hasText: 'Scored by the aesthetic head (nightshift-tiny-aesthetic@' }).waitFor();
    await page.locator('#best-note', { hasText: 'until you star 10 more images' }).waitFor();
    const tiles = page.locator('#best-strip .best-tile');
    assert.equal(await tiles.count(), 12);
    // Only a picture with yellow scores above 5 with this head: the four yellow circles lead.
    const scores = (await tiles.evaluateAll((els) => els.map((e) => e.getAttribute('title') ?? ''))).map((t) => Number(/score ([\d.]+)/.exec(t)![1]));
    assert.deepEqual(scores.map((v) => v > 5), [...Array(4).fill(true), ...Array(8).fill(false)], scores.join(', '));
  });

  test('the gallery sorted by "Likely favorites" with no stars: the head ranks, yellow first, its scores titled as such', async () => {
    await page.goto(`${farm.apiUrl}/ui/gallery?sort=likely`);
    await page.locator('#gallery-status', { hasText: 'Likely favorites by the aesthetic head' }).waitFor();
    const caps = await page.locator('#gallery-grid .card .cap').allInnerTexts();
    assert.equal(caps.length, 16);
    assert.deepEqual(caps.slice(0, 4).map((c) => c.startsWith('a yellow circle')), [true, true, true, true], caps.join(' | '));
    assert.ok(caps.slice(4).every((c) => !c.includes('yellow')));
    assert.equal(await page.locator('#gallery-grid .card .score').first().getAttribute('title'), 'aesthetic score (aesthetic head)');
    await screenshot(page, 'gallery-likely-aesthetic');
    assert.deepEqual(problems, []);
  });
});

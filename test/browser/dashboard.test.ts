/**
 * The dashboard end to end in headless Chromium against a real farm
 * (nats-server, S3, coordinator, two gpu-nodes, indexer as processes):
 * nodes page, submitting through the form, the live contact sheet over SSE,
 * the X/Y view, search, favorites that survive a reload, image detail and
 * "render more seeds". Screenshots go to test-artifacts/browser/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { waitFor } from '@nightshift/devfarm';
import { browserMissing, screenshot } from './chromium.js';
import { openFarmPage, type FarmPage } from './farm-page.js';

// Globals of the page, for the callbacks that run inside the browser (the project's tsconfig has no DOM lib).
declare const document: any;  
declare const window: any;  

const skip = browserMissing();

/** Records every state each contact-sheet tile shows, from the first paint on. */
const TILE_RECORDER = `
  window.__tiles = {};
  const note = (t) => {
    const s = t.dataset.state + (t.dataset.img ? ':' + t.dataset.img : '');
    const seq = (window.__tiles[t.dataset.job] ||= []);
    if (seq[seq.length - 1] !== s) seq.push(s);
  };
  new MutationObserver((muts) => {
    for (const m of muts) {
      const nodes = m.type === 'attributes' ? [m.target] : [...m.addedNodes];
      for (const n of nodes) {
        if (!(n instanceof HTMLElement)) continue;
        if (n.matches('.tile')) note(n);
        for (const t of n.querySelectorAll('.tile')) note(t);
      }
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-img'] });
`;

describe('dashboard in headless Chromium', { skip, timeout: 300_000 }, () => {
  let fp: FarmPage;
  let farm: FarmPage['farm'];
  let page: Page;
  let problems: string[];
  let sweepId = '';

  before(async () => {
    fp = await openFarmPage({ nodes: 2, indexer: true });
    ({ farm, page, problems } = fp);
  });

  after(() => fp?.close());

  test('the nodes page shows both gpu-nodes online with their capabilities', async () => {
    await page.goto(`${farm.apiUrl}/ui/nodes`);
    const rows = page.locator('#nodes-body tr[data-node]');
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);
    for (const name of ['node-0', 'node-1']) {
      const row = page.locator(`#nodes-body tr[data-node="${name}"]`);
      assert.match(await row.innerText(), /online/i);
      assert.match(await row.innerText(), /procedural/);
    }
    assert.match(await page.locator('#nodes-msg').innerText(), /2 of 2 node\(s\) online/);
    await screenshot(page, 'nodes');
  });

  test('the submit form previews the job count and prompts, marks bad fields, and submits', async () => {
    await page.goto(`${farm.apiUrl}/ui/submit`);
    await page.fill('#f-name', 'browser sweep');
    await page.fill('#f-prompts', 'a red circle\na blue square');
    await page.click('#add-axis');
    await page.fill('#axis-name-1', 'style');
    await page.fill('#axis-values-1', '(none)\nwatercolor');
    await page.fill('#f-seed-start', '0');
    await page.fill('#f-seed-count', '6');
    await page.fill('#f-width', '500');
    await page.fill('#f-height', '512');
    await page.fill('#f-steps', '200');
    // A width that is not a multiple of 8: the error sits next to the field and the form stays.
    await page.click('#submit-sweep');
    await page.locator('#f-width-error').filter({ hasText: 'multiple of 8' }).waitFor();
    assert.equal(await page.getAttribute('#f-width', 'aria-invalid'), 'true');
    assert.match(page.url(), /\/ui\/submit$/);
    await screenshot(page, 'submit-invalid');

    await page.fill('#f-width', '512');
    await page.locator('#preview-count').filter({ hasText: '24 jobs' }).waitFor();
    const samples = await page.locator('#preview-samples li').allInnerTexts();
    assert.ok(samples.includes('a red circle, watercolor'), samples.join(' | '));
    assert.ok(samples.includes('a blue square'), samples.join(' | '));
    assert.equal(await page.locator('#f-width-error').innerText(), '');
    await screenshot(page, 'submit-preview');

    // Watch the sweep page from its very first paint.
    await page.addInitScript(TILE_RECORDER);
    await page.click('#submit-sweep');
    await page.waitForURL(/\/ui\/sweeps\/sw-/);
    sweepId = page.url().split('/ui/sweeps/')[1]!;
  });

  test('contact sheet tiles go queued → live preview → thumbnail over SSE, without a reload', async (t) => {
    assert.ok(sweepId, 'needs the sweep submitted by the previous test');
    await page.locator('.tile').nth(23).waitFor();
    assert.equal(await page.locator('.tile').count(), 24);
    // A screenshot while previews are on screen (best effort: renders are quick).
    await page.waitForFunction(() => document.querySelector('.tile[data-img="preview"]') || document.querySelectorAll('.tile[data-img="thumb"]').length === 24, null, { timeout: 60_000 });
    await screenshot(page, 'contact-sheet-live');
    await page.waitForFunction(() => document.querySelectorAll('.tile[data-state="done"][data-img="thumb"]').length === 24, null, { timeout: 120_000 });
    await page.waitForFunction(() => [...document.querySelectorAll('.tile img')].every((i: any) => i.complete && i.naturalWidth > 0), null, { timeout: 30_000 });
    await page.locator('#sweep-status').filter({ hasText: 'done' }).waitFor();

    const seqs = await page.evaluate(() => (window as unknown as { __tiles: Record<string, string[]> }).__tiles);
    const stats = await page.evaluate(() => (window as unknown as { nightshiftStats: { previews: number; events: Record<string, number> } }).nightshiftStats);
    const all = Object.values(seqs);
    assert.equal(all.length, 24);
    const fullPath = all.filter((s) => {
      const q = s.indexOf('queued');
      const p = s.indexOf('running:preview');
      const d = s.lastIndexOf('done:thumb');
      return q >= 0 && p > q && d > p;
    });
    assert.ok(fullPath.length > 0, `no tile went queued → preview → thumbnail: ${JSON.stringify(seqs)}`);
    assert.ok(all.every((s) => s[s.length - 1] === 'done:thumb'));
    assert.ok(stats.previews > 0, `no preview arrived over SSE: ${JSON.stringify(stats)}`);
    assert.ok((stats.events.job ?? 0) >= 24);
    assert.equal(await page.locator('#sweep-counts').innerText().then((t) => /24 \/ 24/.test(t)), true);
    await screenshot(page, 'contact-sheet-done');
    t.diagnostic(`${fullPath.length}/24 tiles seen going queued → preview → thumbnail; ${stats.previews} previews over SSE`);
  });

  test('the X/Y view puts one axis on rows and another on columns', async () => {
    await page.check('input[name=view][value=xy]');
    await page.selectOption('#xy-rows', 'axis:style');
    await page.selectOption('#xy-cols', 'seed');
    const table = page.locator('.xy table');
    await table.waitFor();
    const colHeads = await table.locator('thead th').allInnerTexts();
    assert.deepEqual(colHeads.slice(1), ['0', '1', '2', '3', '4', '5']);
    const rowHeads = await table.locator('tbody th').allInnerTexts();
    assert.deepEqual(rowHeads, ['(none)', 'watercolor']);
    // 2 prompts per cell: style × seed fixed, prompt varies.
    assert.equal(await table.locator('tbody tr').first().locator('td').first().locator('.tile').count(), 2);
    await page.selectOption('#xy-rows', 'prompt');
    assert.deepEqual(await table.locator('tbody th').allInnerTexts(), ['a red circle', 'a blue square']);
    await screenshot(page, 'xy-grid');
  });

  test('search finds images; a favorite survives a reload and filters the gallery', async () => {
    await waitFor('the indexer to index 24 images', async () => {
      const h = (await (await fetch(`${farm.indexerUrl}/healthz`)).json()) as { indexed: number };
      return h.indexed >= 24;
    }, 60_000, 200);
    await page.goto(`${farm.apiUrl}/ui/gallery`);
    await page.locator('#gallery-status').filter({ hasText: '24 images' }).waitFor();
    assert.equal(await page.locator('#gallery-grid .card').count(), 24);

    await page.fill('#g-q', 'red');
    await page.press('#g-q', 'Enter');
    await page.waitForURL(/q=red/);
    await page.locator('#gallery-grid .card').first().waitFor();
    const prompts = await page.locator('#gallery-grid .card .cap').allInnerTexts();
    assert.ok(prompts.length >= 12);
    for (const p of prompts.slice(0, 12)) assert.match(p, /^a red circle/, `"red" ranked ${p} in its top 12`);
    await screenshot(page, 'search-red');

    const first = page.locator('#gallery-grid .card').first();
    const key = (await first.getAttribute('data-key'))!;
    const fav = first.locator('button.fav');
    assert.equal(await fav.getAttribute('aria-pressed'), 'false');
    const put = page.waitForResponse((r) => r.url().includes(`/api/favorites/${key}`) && r.request().method() === 'PUT');
    await fav.click();
    assert.equal((await put).status(), 200);
    assert.equal(await fav.getAttribute('aria-pressed'), 'true');

    await page.reload();
    const again = page.locator(`#gallery-grid .card[data-key="${key}"] button.fav`);
    await again.waitFor();
    assert.equal(await again.getAttribute('aria-pressed'), 'true', 'the favorite did not survive a reload');

    // The browse view knows it too, and "favorites only" shows just that image.
    await page.goto(`${farm.apiUrl}/ui/gallery?favorites=true`);
    await page.locator('#gallery-status').filter({ hasText: '1 image marked favorite' }).waitFor();
    assert.deepEqual(await page.locator('#gallery-grid .card').evaluateAll((els) => els.map((e: any) => e.dataset.key)), [key]);
    assert.equal(await page.locator('#gallery-grid .card button.fav').getAttribute('aria-pressed'), 'true');
    await screenshot(page, 'favorites');
  });

  test('image detail shows prompt, seed, params and node; "more like this" and "render more seeds" work', async () => {
    await page.goto(`${farm.apiUrl}/ui/gallery?q=blue`);
    const card = page.locator('#gallery-grid .card').first();
    await card.waitFor();
    const key = (await card.getAttribute('data-key'))!;
    await card.locator('.thumb').click();
    const dialog = page.locator('#image-dialog');
    await dialog.locator('#img-meta dd').first().waitFor();
    const meta = await dialog.locator('#img-meta').innerText();
    assert.match(meta, /a blue square/);
    assert.match(meta, /Seed\s+\d/);
    assert.match(meta, /512×512/);
    assert.match(meta, /Steps\s+200/);
    assert.match(meta, /node-[01]/);
    await dialog.locator('#img-full').evaluate((img: any) => (img.complete ? null : new Promise((r) => (img.onload = r))));
    assert.ok(await dialog.locator('#img-full').evaluate((img: any) => img.naturalWidth === 512));
    await screenshot(page, 'image-detail');

    await dialog.locator('#img-like').click();
    await page.waitForURL(/like=/);
    await page.locator('#gallery-grid .card').first().waitFor();
    assert.equal(await page.locator('#gallery-grid .card').first().getAttribute('data-key'), key, 'an image is most like itself');

    await page.locator('#gallery-grid .card').first().locator('.thumb').click();
    await dialog.locator('#img-meta dd').first().waitFor();
    await page.fill('#img-more-count', '3');
    await page.click('#img-more-form button[type=submit]');
    await page.waitForURL(/\/ui\/sweeps\/sw-/);
    const more = page.url().split('/ui/sweeps/')[1]!;
    const jobs = (await (await fetch(`${farm.apiUrl}/api/sweeps/${more}/jobs`)).json()) as { jobs: { prompt: string; seed: number }[] };
    assert.deepEqual(jobs.jobs.map((j) => j.seed), [6, 7, 8], 'the next seeds after the six this prompt already has');
    assert.ok(jobs.jobs.every((j) => j.prompt.startsWith('a blue square')));
    await page.waitForFunction(() => document.querySelectorAll('.tile[data-state="done"]').length === 3, null, { timeout: 60_000 });
  });

  test('sweeps list shows progress and counts; priority, pause, resume and cancel work from it', async () => {
    await page.goto(`${farm.apiUrl}/ui/`);
    const row = page.locator(`#sweeps-body tr[data-id="${sweepId}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /browser sweep/);
    assert.match(await row.innerText(), /24 \/ 24/);
    assert.match(await row.innerText(), /done/i);
    assert.equal(await row.locator('[data-action=pause]').isDisabled(), true, 'a finished sweep cannot be paused');
    await row.locator('input[type=number]').fill('5');
    await row.locator('form.priority button').click();
    await page.locator('#toasts').filter({ hasText: 'set to 5' }).waitFor();
    assert.equal(await row.locator('input[type=number]').inputValue(), '5');
    const s = (await (await fetch(`${farm.apiUrl}/api/sweeps/${sweepId}`)).json()) as { priority: number };
    assert.equal(s.priority, 5);

    // A long sweep: pause, resume and cancel it from its row.
    const long = (await (
      await fetch(`${farm.apiUrl}/api/sweeps`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'long sweep', prompts: ['a yellow triangle', 'purple circles'], seeds: { start: 0, count: 300 }, params: { width: 64, height: 64, steps: 1 } }),
      })
    ).json()) as { id: string };
    const lrow = page.locator(`#sweeps-body tr[data-id="${long.id}"]`);
    await lrow.waitFor();
    await lrow.locator('[data-action=pause]').click();
    await lrow.locator('.status').filter({ hasText: /paused/i }).waitFor();
    assert.equal(await lrow.locator('[data-action=resume]').isDisabled(), false);
    await screenshot(page, 'sweeps-paused');
    await lrow.locator('[data-action=resume]').click();
    await lrow.locator('.status').filter({ hasText: /running|queued/i }).waitFor();
    page.once('dialog', (d) => void d.accept());
    await lrow.locator('[data-action=cancel]').click();
    await lrow.locator('.status').filter({ hasText: /cancelled/i }).waitFor();
    assert.match(await lrow.innerText(), /cancelled/i);
    await screenshot(page, 'sweeps');
    // The only failed requests were the deliberate 400s of the invalid form (preview and submit).
    assert.deepEqual(problems.filter((p) => !/status of 400/.test(p)), []);
  });
});

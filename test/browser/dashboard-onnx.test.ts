/**
 * The dashboard's Stable Diffusion (onnx backend) controls in headless
 * Chromium against a real farm whose one gpu-node runs the built-in
 * nightshift-tiny-sd (and the procedural painter): an onnx sweep submitted from the form (sampler select,
 * negative prompt, batch with its limit shown at the field, the model default shown) renders; the image dialog's
 * "Variations" submits an img2img sweep from that image (params.init = its
 * key, strength 0.6, new seeds) that renders too; remixing one of its PNGs
 * fills the onnx fields again. Screenshots go to
 * test-artifacts/browser/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { SAMPLERS } from '@nightshift/diffusion';
import { browserMissing, screenshot } from './chromium.js';
import { openFarmPage, type FarmPage } from './farm-page.js';

// Globals of the page, for the callbacks that run inside the browser (the project's tsconfig has no DOM lib).
declare const document: { querySelectorAll(sel: string): { length: number } };

const skip = browserMissing();

interface SweepDetail {
  spec: { backend: string; model?: string; seeds: unknown; params: Record<string, unknown> };
  counts: Record<string, number>;
}

describe('dashboard onnx controls in headless Chromium', { skip, timeout: 300_000 }, () => {
  let fp: FarmPage;
  let farm: FarmPage['farm'];
  let page: Page;
  let problems: string[];
  let sweepId = '';
  let firstKey = '';

  const sweep = async (id: string) => (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as SweepDetail;
  const allDone = (n: number) => page.waitForFunction((count) => document.querySelectorAll('.tile[data-state="done"]').length === count, n, { timeout: 120_000 });

  before(async () => {
    fp = await openFarmPage({
      tmpPrefix: 'nightshift-onnx-browser-',
      nodes: 1,
      prepare: (dir) => {
        const config = join(dir, 'onnx-node.yaml');
        writeFileSync(config, 'procedural: true\nonnx:\n  threads: 1\n');
        return { nodeEnv: (): Record<string, string> => ({ NIGHTSHIFT_NODE_CONFIG: config }) };
      },
    });
    ({ farm, page, problems } = fp);
  });

  after(() => fp?.close());

  test('the form offers onnx with a sampler select, a negative prompt and the default model, and submits an onnx sweep', async () => {
    await page.goto(`${farm.apiUrl}/ui/submit`);
    const onnxFields = page.locator('#onnx-fields');
    assert.equal(await onnxFields.isVisible(), false, 'the onnx fields show only for the onnx backend');
    await page.selectOption('#f-backend', 'onnx');
    await onnxFields.waitFor();
    assert.deepEqual(await page.locator('#f-sampler option').evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value)), ['', ...SAMPLERS]);
    assert.equal(await page.getAttribute('#f-model', 'placeholder'), 'nightshift-tiny-sd');
    assert.match(await page.locator('#f-model-default').innerText(), /nightshift-tiny-sd/);

    await page.fill('#f-name', 'onnx from the form');
    await page.fill('#f-prompts', 'a red fox in the snow');
    await page.fill('#f-seed-start', '0');
    await page.fill('#f-seed-count', '2');
    await page.fill('#f-width', '64');
    await page.fill('#f-height', '64');
    await page.fill('#f-steps', '4');
    await page.fill('#f-guidance', '5');
    await page.selectOption('#f-sampler', 'dpmpp_2m_karras');
    await page.fill('#f-negative', 'blurry, low quality');
    // params.batch: the API's limit shows next to the field, then both seeds go in one UNet batch.
    const logged = problems.length;
    await page.fill('#f-batch', '9');
    await page.locator('#f-batch-error').filter({ hasText: 'at most 8' }).waitFor();
    assert.equal(await page.getAttribute('#f-batch', 'aria-invalid'), 'true');
    // The preview's 400 is the answer wanted here; the browser logs it as a console error.
    const refused = problems.splice(logged);
    assert.ok(refused.every((p) => /status of 400/.test(p)), refused.join('\n'));
    await page.fill('#f-batch', '2');
    await page.locator('#preview-count').filter({ hasText: '2 jobs' }).waitFor();
    assert.equal(await page.locator('#f-batch-error').innerText(), '');
    await screenshot(page, 'submit-onnx');
    await page.click('#submit-sweep');
    await page.waitForURL(/\/ui\/sweeps\/sw-/);
    sweepId = page.url().split('/ui/sweeps/')[1]!;

    const s = await sweep(sweepId);
    assert.equal(s.spec.backend, 'onnx');
    assert.equal(s.spec.model, undefined, 'an empty Model field leaves the default to the coordinator');
    assert.deepEqual(s.spec.params, { width: 64, height: 64, steps: 4, guidance: 5, sampler: 'dpmpp_2m_karras', negative_prompt: 'blurry, low quality', batch: 2 });
    await allDone(2);
    assert.equal((await sweep(sweepId)).counts.done, 2);

    // Back to procedural: the onnx fields hide and no longer go into the spec.
    await page.goto(`${farm.apiUrl}/ui/submit`);
    await page.selectOption('#f-backend', 'onnx');
    await page.selectOption('#f-sampler', 'euler');
    await page.fill('#f-batch', '4');
    await page.selectOption('#f-backend', 'procedural');
    assert.equal(await onnxFields.isVisible(), false);
    assert.equal(await page.getAttribute('#f-model', 'placeholder'), 'backend default');
    // The hidden batch is not sent: the API refuses params.batch on other backends, and the preview counts jobs.
    await page.fill('#f-prompts', 'a red fox in the snow');
    await page.locator('#preview-count').filter({ hasText: /\d jobs?/ }).waitFor();
  });

  test('"Variations" in the image dialog submits an img2img onnx sweep from the image and links to it', async () => {
    assert.ok(sweepId, 'needs the sweep submitted by the previous test');
    await page.goto(`${farm.apiUrl}/ui/gallery?sweep=${sweepId}`);
    const card = page.locator('#gallery-grid .card').first();
    await card.waitFor();
    const renderKey = (await card.getAttribute('data-key'))!;
    firstKey = renderKey;
    await card.locator('.thumb').click();
    const dialog = page.locator('#image-dialog');
    await dialog.locator('#img-meta dd').first().waitFor();
    assert.match(await dialog.locator('#img-meta').innerText(), /dpmpp_2m_karras/);
    assert.match(await dialog.locator('#img-variations-hint').innerText(), /strength 0\.6/);

    await dialog.locator('#img-variations').click();
    const link = dialog.locator('#img-msg a');
    await link.waitFor();
    assert.match(await dialog.locator('#img-msg').innerText(), /4 variations queued as sw-/);
    await screenshot(page, 'image-variations');
    await link.click();
    await page.waitForURL(/\/ui\/sweeps\/sw-/);
    const id = page.url().split('/ui/sweeps/')[1]!;
    assert.notEqual(id, sweepId);

    const s = await sweep(id);
    assert.equal(s.spec.backend, 'onnx');
    assert.equal(s.spec.params.init, `images/${renderKey}.png`);
    assert.equal(s.spec.params.strength, 0.6);
    // The source image's own settings carry over; the seeds are ones this prompt has not had.
    assert.equal(s.spec.params.sampler, 'dpmpp_2m_karras');
    assert.equal(s.spec.params.negative_prompt, 'blurry, low quality');
    assert.deepEqual(s.spec.seeds, { start: 2, count: 4 });
    await allDone(4);
    assert.equal((await sweep(id)).counts.done, 4, 'img2img from the stored image rendered');
    assert.deepEqual(problems, []);
  });

  test('"Variations" of a procedural image keep only its size (its steps and guidance mean something else there)', async () => {
    const res = await fetch(`${farm.apiUrl}/api/sweeps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'procedural', prompts: ['a blue square'], seeds: [7], params: { width: 64, height: 64, steps: 200, guidance: 9 } }),
    });
    assert.equal(res.status, 201);
    const { id } = (await res.json()) as { id: string };
    await page.goto(`${farm.apiUrl}/ui/sweeps/${id}`);
    await allDone(1);
    await page.goto(`${farm.apiUrl}/ui/gallery?sweep=${id}`);
    const card = page.locator('#gallery-grid .card').first();
    await card.waitFor();
    const renderKey = (await card.getAttribute('data-key'))!;
    await card.locator('.thumb').click();
    const dialog = page.locator('#image-dialog');
    await dialog.locator('#img-meta dd').first().waitFor();
    await dialog.locator('#img-variations').click();
    await dialog.locator('#img-msg a').click();
    await page.waitForURL(/\/ui\/sweeps\/sw-/);
    const s = await sweep(page.url().split('/ui/sweeps/')[1]!);
    assert.equal(s.spec.backend, 'onnx');
    assert.equal(s.spec.model, undefined, 'the onnx default model, not the procedural one');
    const { width, height, init, strength, steps, guidance } = s.spec.params;
    assert.deepEqual({ width, height, init, strength }, { width: 64, height: 64, init: `images/${renderKey}.png`, strength: 0.6 });
    // Left to the coordinator's defaults, not the procedural image's 200 steps and guidance 9.
    assert.notEqual(steps, 200);
    assert.notEqual(guidance, 9);
    await allDone(4);
  });

  test('a remixed onnx PNG fills the sampler and negative prompt fields', async () => {
    assert.ok(firstKey, 'needs the image of the previous test');
    const png = Buffer.from(await (await fetch(`${farm.apiUrl}/files/images/${firstKey}.png`)).arrayBuffer());
    await page.goto(`${farm.apiUrl}/ui/submit`);
    await page.setInputFiles('#remix-file', { name: 'fox.png', mimeType: 'image/png', buffer: png });
    await page.locator('#onnx-fields').waitFor();
    assert.equal(await page.inputValue('#f-backend'), 'onnx');
    assert.equal(await page.inputValue('#f-sampler'), 'dpmpp_2m_karras');
    assert.equal(await page.inputValue('#f-negative'), 'blurry, low quality');
    assert.doesNotMatch(await page.inputValue('#f-extra'), /sampler|negative_prompt/, 'the onnx settings are in their own fields, not repeated as key=value lines');
    assert.deepEqual(problems, []);
  });
});

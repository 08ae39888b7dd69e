/**
 * The submit page's remix drop zone in headless Chromium against a real
 * coordinator (no gpu-nodes needed): a ComfyUI PNG chosen, then an A1111
 * PNG dropped, fill the form with their settings; settings beyond a sweep's
 * limits are marked; a PNG without settings gets the coordinator's 422
 * message naming its chunks. The remixed form then submits.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { a1111Infotext, comfyPng, pngWithText } from '../../packages/common/src/remix-fixtures.js';
import { browserMissing, screenshot } from './chromium.js';
import { openFarmPage, type FarmPage } from './farm-page.js';

declare const document: any;
declare const DataTransfer: any;
declare const File: any;
declare const DragEvent: any;

const skip = browserMissing();

describe('remix drop zone in headless Chromium', { skip, timeout: 180_000 }, () => {
  let fp: FarmPage;
  let farm: FarmPage['farm'];
  let tmp: FarmPage['tmp'];
  let page: Page;
  let problems: string[];

  before(async () => {
    fp = await openFarmPage({ tmpPrefix: 'nightshift-remix-ui-', nodes: 0 });
    ({ farm, tmp, page, problems } = fp);
    await page.goto(`${farm.apiUrl}/ui/submit`);
  });

  after(() => fp?.close());

  /** Drops `png` on the zone the way a file manager does (a DataTransfer with one File). */
  async function drop(png: Buffer, name: string) {
    await page.evaluate(
      ([b64, fileName]) => {
        const bytes = Uint8Array.from(atob(b64!), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], fileName, { type: '' }));
        document.querySelector('#remix').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      },
      [png.toString('base64'), name],
    );
  }

  test('a chosen ComfyUI PNG fills the form', async () => {
    const file = join(tmp.dir, 'comfy.png');
    writeFileSync(file, comfyPng({ positive: 'a lighthouse at dusk', negative: 'blurry, text', seed: 1234, steps: 25, cfg: 6.5, sampler: 'euler', scheduler: 'karras', width: 512, height: 768, ckpt: 'sdxl/base.safetensors' }));
    await page.setInputFiles('#remix-file', file);
    await page.waitForFunction(() => document.querySelector('#f-prompts').value === 'a lighthouse at dusk');
    assert.deepEqual([await page.inputValue('#f-seed-start'), await page.inputValue('#f-seed-count'), await page.inputValue('#f-seed-list')], ['1234', '1', ''], 'the image\'s seed first: more seeds are a count away');
    assert.deepEqual([await page.inputValue('#f-width'), await page.inputValue('#f-height'), await page.inputValue('#f-steps'), await page.inputValue('#f-guidance')], ['512', '768', '25', '6.5']);
    assert.equal(await page.inputValue('#f-backend'), 'exec');
    assert.equal(await page.inputValue('#f-model'), 'sdxl/base');
    assert.deepEqual((await page.inputValue('#f-extra')).split('\n').sort(), ['negative_prompt=blurry, text', 'sampler=euler', 'scheduler=karras']);
    assert.match(await page.locator('#remix-result').innerText(), /ComfyUI settings/);
    await page.waitForFunction(() => /1 job/.test(document.querySelector('#preview-count').textContent));
    await screenshot(page, 'remix-comfyui');
  });

  test('a dropped A1111 PNG (no file type) replaces it; out-of-limit sizes are marked', async () => {
    await drop(pngWithText(64, 64, [['parameters', a1111Infotext('a huge poster', '', [['Steps', '20'], ['Sampler', 'Euler a'], ['CFG scale', '7'], ['Seed', '42'], ['Size', '4096x512']])]]), 'poster.png');
    await page.waitForFunction(() => document.querySelector('#f-prompts').value === 'a huge poster');
    assert.equal(await page.inputValue('#f-seed-start'), '42');
    assert.equal(await page.getAttribute('#f-width', 'aria-invalid'), 'true');
    assert.match(await page.locator('#f-width-error').innerText(), /at most 2048/);
    assert.match(await page.locator('#remix-result').innerText(), /AUTOMATIC1111 settings[\s\S]*fix the marked fields/);
  });

  test('a PNG without settings: the coordinator\'s message, form untouched', async () => {
    await drop(pngWithText(64, 64, [['Software', 'GIMP 2.10']]), 'plain.png');
    await page.locator('#remix-result .field-error').waitFor();
    assert.match(await page.locator('#remix-result').innerText(), /"Software"/);
    assert.equal(await page.inputValue('#f-prompts'), 'a huge poster');
  });

  test('the remixed form submits as a sweep', async () => {
    await page.fill('#f-width', '512');
    await page.fill('#f-seed-count', '2');
    await page.click('#submit-sweep');
    await page.waitForURL(/\/ui\/sweeps\//);
    const id = page.url().split('/ui/sweeps/')[1]!;
    const sweep = (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as { total: number; spec: { prompts: string[]; seeds: unknown; backend: string } };
    assert.deepEqual([sweep.spec.prompts, sweep.spec.seeds, sweep.spec.backend], [['a huge poster'], { start: 42, count: 2 }, 'exec']);
    assert.deepEqual(problems.filter((p) => !/status of 422/.test(p)), []);
  });
});

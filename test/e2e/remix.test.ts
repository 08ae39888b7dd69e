/**
 * Remix from any PNG over a real farm (nats-server, S3, coordinator, a
 * gpu-node as processes): an image the procedural painter rendered and the
 * gpu-node stamped, remixed by upload and by bucket key, gives a spec whose
 * job for the same seed has the original's renderKey; `nightshift remix
 * --seeds N --submit` turns it into a sweep starting at that render.
 * Images written the way A1111, ComfyUI and InvokeAI write them are read
 * too; the error codes of the contract hold over HTTP.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { main } from '@nightshift/cli';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { a1111Infotext, comfyPng, invokeMetadata, pngWithText, pyJsonDumps } from '../../packages/common/src/remix-fixtures.js';

interface RemixBody {
  spec: unknown;
  source: string;
  notes: string[];
  issues?: unknown[];
  error?: string;
  found?: string[];
}

let farm: Farm;
let tmp: ReturnType<typeof tempDir>;

const remix = async (body: Uint8Array | string, type: string) => {
  const res = await fetch(`${farm.apiUrl}/api/remix`, { method: 'POST', headers: { 'content-type': type }, body });
  return { status: res.status, body: (await res.json()) as RemixBody };
};

async function waitDone(id: string) {
  return waitFor(`sweep ${id}`, async () => {
    const s = (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as { status: string };
    return ['done', 'failed'].includes(s.status) ? s : undefined;
  }, 90_000, 200);
}

const renderKeyOf = (spec: unknown) => {
  const jobs = expandSweep(parseSpec(spec), 100);
  assert.equal(jobs.length, 1, 'one image, one job');
  return jobs[0]!;
};

describe('remix from any PNG', { timeout: 180_000 }, () => {
  let image: { key: string; renderKey: string; seed: number };

  before(async () => {
    tmp = tempDir('nightshift-remix-');
    farm = await startFarm({ dir: tmp.dir, nodes: 1 });
    await waitForNodes(farm.apiUrl, 1);
    const spec = { prompts: ['a red circle'], axes: { style: ['', 'ink wash'] }, seeds: [11, 12], params: { width: 64, height: 64, steps: 6, guidance: 5.5, sampler: 'euler', detail: 0.25 } };
    const res = await fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    assert.equal(res.status, 201);
    const { id } = (await res.json()) as { id: string };
    assert.equal((await waitDone(id)).status, 'done');
    const images = ((await (await fetch(`${farm.apiUrl}/api/sweeps/${id}/images`)).json()) as { images: { key: string; renderKey: string; prompt: string; seed: number }[] }).images;
    image = images.find((i) => i.prompt === 'a red circle, ink wash' && i.seed === 12)!;
    assert.ok(image, 'the rendered image');
  });

  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  test('a rendered image remixed (uploaded or by key) renders to the same renderKey', async () => {
    const png = await farm.storage.get(image.key);
    const up = await remix(new Uint8Array(png), 'image/png');
    assert.equal(up.status, 200, up.body.error);
    assert.equal(up.body.source, 'nightshift');
    assert.equal(up.body.issues, undefined);
    const job = renderKeyOf(up.body.spec);
    assert.equal(job.seed, image.seed);
    assert.equal(job.renderKey, image.renderKey);

    const byKey = await remix(JSON.stringify({ key: image.key }), 'application/json');
    assert.equal(byKey.status, 200, byKey.body.error);
    assert.deepEqual(byKey.body.spec, up.body.spec);
    assert.equal((await remix(JSON.stringify({ key: 'images/nope.png' }), 'application/json')).status, 404);
    assert.equal((await remix(JSON.stringify({ key: 'previews/x/../../etc.png' }), 'application/json')).status, 400);
  });

  test('nightshift remix --seeds 3 --submit: a sweep whose first job is the original render', async () => {
    const file = join(tmp.dir, 'remix-me.png');
    writeFileSync(file, await farm.storage.get(image.key));
    let out = '';
    const sink = (write: (s: string) => void) => new Writable({ write: (c, _e, cb) => (write(String(c)), cb()) });
    // Printed (the default): a YAML spec file, notes aside, that renders the same image.
    assert.equal(await main(['node', 'nightshift', '--url', farm.apiUrl, 'remix', file], { out: sink((s) => (out += s)), err: sink(() => {}), env: {} }), 0);
    assert.match(out, /^# remixed from .*remix-me\.png \(nightshift metadata\)\n/);
    assert.equal(renderKeyOf(parseYaml(out)).renderKey, image.renderKey);
    out = '';
    const code = await main(['node', 'nightshift', '--url', farm.apiUrl, '--json', 'remix', file, '--seeds', '3', '--axis', 'params.steps=6,8', '--submit'], { out: sink((s) => (out += s)), err: sink(() => {}), env: {} });
    assert.equal(code, 0, out);
    const res = JSON.parse(out) as { id: string; jobs: number; source: string };
    assert.equal(res.source, 'nightshift');
    assert.equal(res.jobs, 6, '3 seeds × 2 step counts');
    const jobs = ((await (await fetch(`${farm.apiUrl}/api/sweeps/${res.id}/jobs`)).json()) as { jobs: { seed: number; renderKey: string }[] }).jobs;
    assert.equal(jobs[0]!.seed, image.seed);
    assert.equal(jobs[0]!.renderKey, image.renderKey, 'steps=6 and the original seed: the original render');
    assert.equal(new Set(jobs.map((j) => j.renderKey)).size, 6);
    await waitDone(res.id);
  });

  test('A1111, ComfyUI and InvokeAI images are read; the contract\'s error codes hold', async () => {
    const a1111 = pngWithText(512, 512, [['parameters', a1111Infotext('a lighthouse at dusk', 'blurry', [['Steps', '25'], ['Sampler', 'Euler a'], ['CFG scale', '6.5'], ['Seed', '1234'], ['Size', '512x512'], ['Model', 'v1-5-pruned']])]]);
    const comfy = comfyPng({ positive: 'a lighthouse at dusk', negative: 'blurry', seed: 1234, steps: 25, cfg: 6.5, sampler: 'euler_ancestral', scheduler: 'normal', width: 512, height: 512, ckpt: 'v1-5-pruned.safetensors' });
    const invoke = pngWithText(512, 512, [['invokeai_metadata', pyJsonDumps(invokeMetadata({ positive: 'a lighthouse at dusk', negative: 'blurry', seed: 1234, steps: 25, cfg: 6.5, scheduler: 'euler_a', width: 512, height: 512, model: 'v1-5-pruned' }), { compact: true, ensureAscii: false })]]);
    for (const [source, png] of [['a1111', a1111], ['comfyui', comfy], ['invokeai', invoke]] as const) {
      const r = await remix(new Uint8Array(png), 'image/png');
      assert.equal(r.status, 200, `${source}: ${r.body.error}`);
      assert.equal(r.body.source, source);
      const spec = parseSpec(r.body.spec);
      assert.deepEqual([spec.prompts, spec.seeds, spec.params.width, spec.params.steps, spec.params.guidance, spec.params.negative_prompt, spec.model, spec.backend], [['a lighthouse at dusk'], [1234], 512, 25, 6.5, 'blurry', 'v1-5-pruned', 'exec'], source);
    }
    const unknown = await remix(new Uint8Array(pngWithText(64, 64, [['Software', 'GIMP']])), 'image/png');
    assert.equal(unknown.status, 422);
    assert.deepEqual(unknown.body.found, ['Software']);
    assert.equal((await remix('not a png', 'image/png')).status, 400);
    assert.equal((await remix('x', 'text/plain')).status, 415);
    const big = new Uint8Array(21 * 1024 * 1024);
    const res = await fetch(`${farm.apiUrl}/api/remix`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: big });
    assert.equal(res.status, 413);
  });
});

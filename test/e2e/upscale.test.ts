/**
 * Favorites to ×4 upscales end to end: POST /api/upscale on the coordinator,
 * a gpu-node with the `upscale` capability (the tiny built-in model) over a
 * real S3 server, upscaled/{renderKey}.png with the original parameters, and
 * one nightshift.image.upscaled event per image. Also: previews of running
 * jobs land in S3 as previews/{jobId}.webp, and an upscale naming a registry
 * upscaler (`model`) is pulled by the upscale node and used.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { readPngTextChunks, STREAM, SUBJECTS } from '@nightshift/common';
import { ensureTinyUpscaler } from '@nightshift/models';
import { addModel } from '@nightshift/registry';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

let farm: Farm;
let tmp: ReturnType<typeof tempDir>;
/** The tiny upscaler's .onnx file (node 1's configured one, and added to the registry by the test). */
let upscaler: string;

async function post(path: string, body: unknown) {
  const res = await fetch(`${farm.apiUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { id: string; jobs: number; error?: string } };
}

async function waitDone(id: string) {
  return waitFor(`sweep ${id}`, async () => {
    const s = (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as { status: string; counts: Record<string, number>; failedJobs: unknown[] };
    return ['done', 'failed'].includes(s.status) ? s : undefined;
  }, 90_000, 200);
}

describe('upscale favorites ×4', { timeout: 180_000 }, () => {
  before(async () => {
    tmp = tempDir('nightshift-upscale-');
    const model = await ensureTinyUpscaler(join(tmp.dir, 'models'));
    upscaler = model;
    // Node 0 renders; node 1 only upscales (its config turns the procedural renderer off).
    const config = join(tmp.dir, 'upscale-node.yaml');
    writeFileSync(config, `procedural: false\nupscale:\n  model: ${model}\n  tileSize: 32\n  overlap: 8\n`);
    farm = await startFarm({ dir: tmp.dir, nodes: 2, nodeEnv: (i): Record<string, string> => (i === 1 ? { NIGHTSHIFT_NODE_CONFIG: config } : {}) });
    await waitForNodes(farm.apiUrl, 2);
  });

  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  test('renders, then upscales chosen images on the upscale node', async () => {
    const sweep = await post('/api/sweeps', { prompts: ['a red circle', 'a blue square'], seeds: { count: 2 }, params: { width: 64, height: 64, steps: 40 } });
    assert.equal(sweep.status, 201);
    assert.equal((await waitDone(sweep.body.id)).status, 'done');
    // Previews of running jobs were stored, newest wins, one object per job at most.
    const previews = await farm.storage.list('previews');
    assert.ok(previews.length > 0 && previews.length <= 4, `previews: ${previews.length}`);

    const images = ((await (await fetch(`${farm.apiUrl}/api/sweeps/${sweep.body.id}/images`)).json()) as { images: { key: string; renderKey: string; prompt: string }[] }).images;
    const chosen = images.slice(0, 3);
    const bad = await post('/api/upscale', { keys: ['images/not-a-key.png'] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error ?? '', /invalid upscale request/);

    const up = await post('/api/upscale', { keys: chosen.map((i) => i.key) });
    assert.equal(up.status, 201, up.body.error);
    assert.equal(up.body.jobs, 3);
    const done = await waitDone(up.body.id);
    assert.equal(done.status, 'done', JSON.stringify(done));

    for (const img of chosen) {
      const png = await farm.storage.get(`upscaled/${img.renderKey}.png`);
      const meta = await sharp(png).metadata();
      assert.deepEqual([meta.width, meta.height], [256, 256]);
      const original = readPngTextChunks(await farm.storage.get(img.key));
      assert.equal(readPngTextChunks(png).parameters, original.parameters, 'the original parameters chunk is kept');
    }
    const nc = await connect({ servers: farm.nats.url });
    try {
      await waitFor('3 upscaled events', async () => {
        const info = await (await jetstreamManager(nc)).streams.info(STREAM, { subjects_filter: SUBJECTS.imageUpscaled });
        return info.state.subjects?.[SUBJECTS.imageUpscaled] === 3;
      });
    } finally {
      await nc.close();
    }
    // Only the upscale node did upscales; it rendered nothing.
    const jobs = ((await (await fetch(`${farm.apiUrl}/api/sweeps/${up.body.id}/jobs`)).json()) as { jobs: { node: string }[] }).jobs;
    assert.ok(jobs.every((j) => j.node === 'node-1'));
    assert.ok(images.every((i) => (i as unknown as { node: string }).node === 'node-0'));

    // A registry upscaler named in the request: the job carries its hash, the upscale node pulls it
    // from the bucket and upscales with it (the PNG names it, not the node's configured one).
    const unknown = await post('/api/upscale', { keys: [images[3]!.key], model: 'no-such-upscaler' });
    assert.equal(unknown.status, 400);
    const { manifest } = await addModel(farm.storage, 'registry-x4', 'upscaler', upscaler);
    const viaRegistry = await post('/api/upscale', { keys: [images[3]!.key], model: 'registry-x4' });
    assert.equal(viaRegistry.status, 201, viaRegistry.body.error);
    assert.equal((await waitDone(viaRegistry.body.id)).status, 'done');
    const png = await farm.storage.get(`upscaled/${images[3]!.renderKey}.png`);
    const meta = await sharp(png).metadata();
    assert.deepEqual([meta.width, meta.height], [256, 256]);
    assert.match(readPngTextChunks(png).postprocessing ?? '', /Postprocess upscaler: registry-x4,/);
    const holders = await waitFor('node-1 to report the upscaler cached', async () => {
      const m = (await (await fetch(`${farm.apiUrl}/api/models/registry-x4`)).json()) as { hash: string; nodes: string[] };
      return m.nodes.length ? m : undefined;
    });
    assert.equal(holders.hash, manifest.hash);
    assert.deepEqual(holders.nodes, ['node-1'], 'pulled by the upscale node only');
  });
});

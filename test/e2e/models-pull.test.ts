/**
 * Models go where the work is (issue 14), end to end over real processes: a
 * coordinator, s3rver and three gpu-nodes running the `onnx` backend with
 * empty model caches. A model is added to the farm's registry under a name no
 * node knows; a sweep naming it is resolved to the model's content hash at
 * submit, the nodes pull the model from the bucket on demand, and the sweep
 * renders exactly its images (render keys carry the hash). Each node
 * downloaded the model at most once (the S3 server's access log counts every
 * GET of the model's files, and each one is matched by a node that now holds
 * it); a second sweep on the same model starts with no download at all; a
 * byte flipped in the nodes' cached copies is found and the model fetched again;
 * with a cache cap smaller than two models, a sweep on a second model evicts
 * the first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { addModel, type ModelManifest } from '@nightshift/registry';
import { ensureTinySd } from '@nightshift/models';
import { type Farm, modelCacheDir, startFarm, tempDir, waitFor, waitForNodes } from '@nightshift/devfarm';
import { expectedRenderKeys, modelFileGets as fileGets, modelsApi } from './models-helpers.js';

const NODES = 3;
const MODEL = 'castle-sd';

let farm: Farm;
let tmp: ReturnType<typeof tempDir>;
let manifest: ModelManifest;
/** The second model's folder, and each node's cache cap (smaller than the two models together). */
let other: string;
let capBytes: number;

const client = () => modelsApi(farm.apiUrl);
const api = <T>(path: string) => client().api<T>(path);
const nodes = () => client().nodes();
const submit = (spec: unknown) => client().submit(spec);
const waitDone = (id: string) => client().waitDone(id);

/** GETs of the model's files the S3 server has answered so far, by object key. */
const modelFileGets = () => fileGets(farm.dir, manifest);

const spec = (seeds: { start: number; count: number }) => ({
  name: 'castles from the registry',
  prompts: ['a castle on a hill'],
  seeds,
  backend: 'onnx',
  model: MODEL,
  params: { width: 64, height: 64, steps: 2 },
});

/** The render keys a sweep on the registered model must produce: the content hash in place of the name. */
const expectedKeys = (s: ReturnType<typeof spec>) => expectedRenderKeys(s, manifest.hash);

describe('registry models are pulled by nodes on demand', { timeout: 600_000 }, () => {
  before(async () => {
    tmp = tempDir('nightshift-models-pull-');
    const sd = await ensureTinySd(join(tmp.dir, 'built'));
    // A second model: the same weights plus a note (another hash). Each node's cache holds one and a half of them.
    other = join(tmp.dir, 'other-sd');
    cpSync(sd, other, { recursive: true });
    writeFileSync(join(other, 'NOTE.txt'), 'the same weights under another hash\n');
    const folderBytes = (dir: string) => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).reduce((n, e) => n + statSync(join(e.parentPath, e.name)).size, 0);
    capBytes = Math.floor(1.5 * folderBytes(other));
    // Stable Diffusion only, one thread each: the nodes share the machine's cores.
    const config = join(tmp.dir, 'onnx-node.yaml');
    writeFileSync(config, 'procedural: false\nonnx:\n  threads: 1\n');
    // One job per node at a time: the first dispatch gives each node a job, so every node renders (and pulls) in the first sweep.
    farm = await startFarm({
      dir: join(tmp.dir, 'farm'),
      nodes: NODES,
      s3AccessLog: true,
      modelCache: { gb: capBytes / 1024 ** 3 },
      env: { NIGHTSHIFT_PREFETCH_PER_SLOT: '1' },
      nodeEnv: () => ({ NIGHTSHIFT_NODE_CONFIG: config }),
    });
    await waitForNodes(farm.apiUrl, NODES);
    // Added the way `nightshift models add castle-sd DIR` does it, under a name no node knows.
    manifest = (await addModel(farm.storage, MODEL, 'diffusion', sd)).manifest;
  });

  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  test('three empty caches; a sweep renders exactly its images, each node downloading the model at most once; a second sweep downloads nothing', async () => {
    // Every node reports its (empty) cache from its first message on.
    const before = await waitFor('every node to report its model cache', async () => {
      const all = await nodes();
      return all.length === NODES && all.every((n) => n.status === 'online' && n.models !== null) ? all : undefined;
    }, 60_000, 200);
    for (const n of before) assert.deepEqual(n.models!.cached, [], `${n.id} starts with an empty cache`);
    for (let i = 0; i < NODES; i++) assert.ok(!existsSync(modelCacheDir(farm.dir, i)) || readdirSync(modelCacheDir(farm.dir, i)).length === 0);
    assert.equal(modelFileGets().size, 0);

    const first = spec({ start: 1, count: 6 });
    const id = await submit(first);
    const done = await waitDone(id);
    assert.equal(done.status, 'done', JSON.stringify(done.failedJobs));
    assert.equal(done.counts.done, 6);
    assert.equal(done.counts.failed, 0);

    // Exactly its images: the render keys name the model by content.
    const images = (await api<{ images: { renderKey: string; node: string; url: string }[] }>(`/api/sweeps/${id}/images`)).images;
    assert.deepEqual(images.map((i) => i.renderKey).sort(), expectedKeys(first));
    for (const img of images) assert.equal((await fetch(img.url)).status, 200);
    const sweep = await api<{ spec: { model: string } }>(`/api/sweeps/${id}`);
    assert.equal(sweep.spec.model, MODEL);

    // Every node rendered and holds the model now (reported on its heartbeat).
    const renderers = new Set(images.map((i) => i.node));
    assert.equal(renderers.size, NODES, 'each node got one of the first jobs');
    const holders = await waitFor('the renderers to report the model cached', async () => {
      const all = await nodes();
      const holding = all.filter((n) => n.models?.cached.includes(manifest.hash)).map((n) => n.id);
      return [...renderers].every((r) => holding.includes(r)) ? holding : undefined;
    }, 30_000, 200);

    // Downloads: each file fetched once per node holding it, never more.
    const gets = modelFileGets();
    assert.equal(gets.size, manifest.files.length, 'every file of the model was downloaded');
    for (const [key, n] of gets) {
      assert.ok(n <= NODES, `${key} fetched ${n} times by ${NODES} nodes`);
      assert.equal(n, holders.length, `${key}: one download per node holding the model (${holders.join(', ')})`);
    }
    const listed = await api<{ nodes: string[]; hash: string }>(`/api/models/${MODEL}`);
    assert.equal(listed.hash, manifest.hash);
    assert.deepEqual([...listed.nodes].sort(), [...holders].sort(), 'GET /api/models names the nodes holding it');

    // A second sweep on the same model: rendered with no download at all.
    const second = spec({ start: 100, count: 6 });
    const id2 = await submit(second);
    const done2 = await waitDone(id2);
    assert.equal(done2.status, 'done', JSON.stringify(done2.failedJobs));
    const images2 = (await api<{ images: { renderKey: string; node: string }[] }>(`/api/sweeps/${id2}/images`)).images;
    assert.deepEqual(images2.map((i) => i.renderKey).sort(), expectedKeys(second));
    assert.deepEqual(modelFileGets(), gets, 'no model file was fetched again');
    for (const img of images2) assert.ok(holders.includes(img.node), `${img.node} rendered without holding the model`);

    // A flipped byte in every node's cached copy: each node that renders next finds it (the file's
    // mtime changed, so it is re-hashed) and fetches the model again, once, before rendering.
    const biggest = [...manifest.files].sort((a, b) => b.size - a.size)[0]!;
    for (let i = 0; i < NODES; i++) {
      const file = join(modelCacheDir(farm.dir, i), manifest.hash, ...biggest.path.split('/'));
      const bytes = readFileSync(file);
      bytes[bytes.length >> 1]! ^= 0xff;
      writeFileSync(file, bytes);
    }
    const third = spec({ start: 200, count: 6 });
    const id3 = await submit(third);
    const done3 = await waitDone(id3);
    assert.equal(done3.status, 'done', JSON.stringify(done3.failedJobs));
    const images3 = (await api<{ images: { renderKey: string; node: string }[] }>(`/api/sweeps/${id3}/images`)).images;
    assert.deepEqual(images3.map((i) => i.renderKey).sort(), expectedKeys(third));
    const renderers3 = new Set(images3.map((i) => i.node));
    const refetched = modelFileGets();
    for (const [key, n] of refetched) assert.equal(n, gets.get(key)! + renderers3.size, `${key}: fetched again once by each of ${[...renderers3].join(', ')}`);
    for (let i = 0; i < NODES; i++) {
      if (!renderers3.has(`node-${i}`)) continue;
      const file = join(modelCacheDir(farm.dir, i), manifest.hash, ...biggest.path.split('/'));
      assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), biggest.sha256, `node-${i}'s copy is whole again`);
    }

    // A second model with a cap smaller than both: a node rendering it evicts the first (the least
    // recently used, in no job's hands) and holds only the second, within the cap.
    const noted = (await addModel(farm.storage, 'castle-sd-note', 'diffusion', other)).manifest;
    assert.ok(manifest.totalSize + noted.totalSize > capBytes && noted.totalSize <= capBytes);
    const id4 = await submit({ ...spec({ start: 300, count: 6 }), model: 'castle-sd-note' });
    const done4 = await waitDone(id4);
    assert.equal(done4.status, 'done', JSON.stringify(done4.failedJobs));
    const renderers4 = new Set((await api<{ images: { node: string }[] }>(`/api/sweeps/${id4}/images`)).images.map((i) => i.node));
    await waitFor('the renderers to report the second model alone', async () => {
      const all = await nodes();
      return [...renderers4].every((r) => all.find((n) => n.id === r)?.models?.cached.join() === noted.hash) || undefined;
    }, 30_000, 200);
    for (const r of renderers4) {
      const i = Number(r.replace('node-', ''));
      assert.ok(!existsSync(join(modelCacheDir(farm.dir, i), manifest.hash)), `${r} evicted the first model's files`);
      assert.ok(existsSync(join(modelCacheDir(farm.dir, i), noted.hash, 'NOTE.txt')));
    }
  });
});

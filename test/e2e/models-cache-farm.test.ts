/**
 * A node's model cache under farm conditions, end to end over real
 * processes (coordinator, nats-server, s3rver, gpu-nodes running an `exec`
 * generator that renders from `{model_path}`):
 *
 * - S3 crashes while a node downloads a model: the node reports the cut
 *   attempt cleared, renders nothing meanwhile, fetches the model again once
 *   S3 is back on the same port and folder, and the sweep renders exactly its
 *   images, each from the whole model (the generator hashes the weights it
 *   was given and outputs the model's own picture).
 * - Least recently used eviction with a model in use: a node whose cache
 *   holds two and a half models gets A (held by a running job), B, then C:
 *   B goes, not A (the least recently used by order, but in use); once A's
 *   job ends, B again: C goes, not A (downloaded first, used last).
 *
 * "Mid-download" is read from the node's reported progress in GET
 * /api/nodes (S3 paces its responses so the download lasts seconds); every
 * wait is for a reported state, never a fixed sleep.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { stringify as toYaml } from 'yaml';
import { addModel, type ModelManifest } from '@nightshift/registry';
import { type Farm, modelCacheDir, startFarm, tempDir, waitFor } from '@nightshift/devfarm';
import { expectedRenderKeys, modelFileGets, modelsApi, type NodeView } from './models-helpers.js';

const MiB = 1024 * 1024;
/** S3's pace: the 12 MiB model takes about four seconds to download. */
const S3_BYTES_PER_S = 3 * MiB;

/**
 * Reads the model's name and weights, records what it was given (name,
 * size, sha256 of the weights) in HOLD_DIR/seen.jsonl, waits for its go-file
 * (HOLD_DIR/go-NAME), then outputs the model's own image.png.
 */
const GENERATOR = `
import { appendFileSync, copyFileSync, existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
const [modelPath, output] = process.argv.slice(2);
const hold = process.env.HOLD_DIR;
const name = readFileSync(join(modelPath, 'name.txt'), 'utf8').trim();
const weights = readFileSync(join(modelPath, 'weights.bin'));
appendFileSync(join(hold, 'seen.jsonl'), JSON.stringify({ name, size: weights.length, sha256: createHash('sha256').update(weights).digest('hex') }) + '\\n');
while (!existsSync(join(hold, 'go-' + name))) await new Promise((r) => setTimeout(r, 20));
copyFileSync(join(modelPath, 'image.png'), output);
`;

interface TestModel {
  name: string;
  manifest: ModelManifest;
  rgb: [number, number, number];
  weightsSha: string;
}

let farm: Farm;
let tmp: ReturnType<typeof tempDir>;
let holdDir: string;
let config: string;
/** node-1's cache cap in GB, set before it starts. */
let node1CacheGb = '';
const client = () => modelsApi(farm.apiUrl);

async function registerModel(name: string, weightBytes: number, rgb: [number, number, number]): Promise<TestModel> {
  const dir = join(tmp.dir, 'src', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'name.txt'), name);
  const weights = Buffer.from(createHash('sha256').update(name).digest('hex').repeat(Math.ceil(weightBytes / 64)).slice(0, weightBytes));
  writeFileSync(join(dir, 'weights.bin'), weights);
  await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toFile(join(dir, 'image.png'));
  const { manifest } = await addModel(farm.storage, name, 'generator-asset', dir);
  return { name, manifest, rgb, weightsSha: createHash('sha256').update(weights).digest('hex') };
}

const spec = (m: TestModel, count: number, start = 1) => ({
  name: `from ${m.name}`,
  prompts: ['a castle'],
  seeds: { start, count },
  backend: 'exec',
  model: m.name,
  params: { width: 64, height: 64, steps: 1 },
});

/** What the generator was given, run by run. */
const seen = (): { name: string; size: number; sha256: string }[] => {
  const file = join(holdDir, 'seen.jsonl');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { name: string; size: number; sha256: string }) : [];
};
const go = (m: TestModel) => writeFileSync(join(holdDir, `go-${m.name}`), '');

async function node(id: string): Promise<NodeView | undefined> {
  return (await client().nodes()).find((n) => n.id === id);
}

/** The first pixel of each image of the sweep, by render key. */
async function coloursOf(id: string): Promise<{ renderKey: string; node: string; rgb: number[] }[]> {
  const out = [];
  for (const img of await client().images(id)) {
    const res = await fetch(img.url);
    assert.equal(res.status, 200);
    const { data } = await sharp(Buffer.from(await res.arrayBuffer())).raw().toBuffer({ resolveWithObject: true });
    out.push({ renderKey: img.renderKey, node: img.node, rgb: [data[0]!, data[1]!, data[2]!] });
  }
  return out;
}

/** Asserts the sweep finished with every job done and none failed, and its images are exactly the spec's, each the model's picture. */
async function assertRendered(id: string, s: ReturnType<typeof spec>, m: TestModel, count: number): Promise<void> {
  const done = await client().waitDone(id);
  assert.equal(done.status, 'done', JSON.stringify(done.failedJobs));
  assert.equal(done.counts.done, count);
  assert.equal(done.counts.failed ?? 0, 0);
  assert.deepEqual(done.failedJobs, []);
  const images = await coloursOf(id);
  assert.deepEqual(images.map((i) => i.renderKey).sort(), expectedRenderKeys(s, m.manifest.hash), 'exactly its images, keyed by the model hash');
  for (const img of images) assert.deepEqual(img.rgb, m.rgb, `${img.renderKey} shows ${m.name}'s picture`);
}

describe('the model cache on a farm: an S3 crash mid-download, LRU eviction with a model in use', { timeout: 600_000 }, () => {
  before(async () => {
    tmp = tempDir('nightshift-models-cache-farm-');
    holdDir = join(tmp.dir, 'hold');
    mkdirSync(holdDir);
    const generator = join(tmp.dir, 'generator.mjs');
    writeFileSync(generator, GENERATOR);
    config = join(tmp.dir, 'node.yaml');
    writeFileSync(config, toYaml({ procedural: false, generators: [{ name: 'from-model', command: [process.execPath, generator, '{model_path}', '{output}'], env: { HOLD_DIR: holdDir }, timeoutMs: 300_000 }] }));
    // node-0 for the outage (many tries, short waits); node-1, started later, for eviction.
    farm = await startFarm({
      dir: join(tmp.dir, 'farm'),
      nodes: 1,
      s3AccessLog: true,
      s3BytesPerSecond: S3_BYTES_PER_S,
      modelCache: {},
      // Heartbeats (which carry the download progress) five times a second.
      env: { NIGHTSHIFT_HEARTBEAT_MS: '200' },
      nodeEnv: (i): Record<string, string> => ({
        NIGHTSHIFT_NODE_CONFIG: config,
        NIGHTSHIFT_MODEL_FETCH_ATTEMPTS: '20',
        NIGHTSHIFT_MODEL_FETCH_RETRY_MS: '200',
        ...(i === 1 ? { NIGHTSHIFT_NODE_SLOTS: '2', NIGHTSHIFT_MODEL_CACHE_GB: node1CacheGb } : {}),
      }),
    });
    await waitFor('node-0 to report its model cache', async () => (await node('node-0'))?.status === 'online' && (await node('node-0'))?.models !== null, 60_000, 100);
  });

  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  test('S3 killed mid-download: the node retries once S3 is back, and renders every image from the whole model', async () => {
    const big = await registerModel('model-big', 12 * MiB, [30, 30, 200]);
    go(big);
    const s = spec(big, 3);
    const id = await client().submit(s);

    // Mid-download, as node-0 reports it.
    const partway = await waitFor('node-0 to report the download partway', async () => {
      const d = (await node('node-0'))?.models?.downloads.find((x) => x.hash === big.manifest.hash);
      return d && d.bytesDone > 0 && d.bytesDone < d.bytesTotal ? d : undefined;
    }, 60_000, 50);
    assert.equal(partway.bytesTotal, big.manifest.totalSize);
    await farm.s3.kill();
    let down = true;
    try {
      // The cut attempt counts for nothing: progress back to 0 while the retries wait; nothing cached, nothing rendered.
      const cleared = await waitFor('node-0 to report the cut attempt cleared', async () => {
        const n = await node('node-0');
        const d = n?.models?.downloads.find((x) => x.hash === big.manifest.hash);
        return d?.bytesDone === 0 ? n : undefined;
      }, 60_000, 50);
      assert.ok(!cleared.models!.cached.includes(big.manifest.hash), 'not cached from a cut download');
      assert.ok(!existsSync(join(modelCacheDir(farm.dir, 0), big.manifest.hash)), 'no model folder from a cut download');
      assert.deepEqual(seen(), [], 'the generator has not run');
      // Back on the same port and folder.
      await farm.s3.start();
      down = false;
    } finally {
      if (down) await farm.s3.start();
    }

    await assertRendered(id, s, big, 3);
    // Every run of the generator was given the whole weights, and it ran once per image (no failed render from partial files).
    assert.deepEqual(seen(), [0, 1, 2].map(() => ({ name: big.name, size: 12 * MiB, sha256: big.weightsSha })));
    const weightsKey = [...modelFileGets(farm.dir, big.manifest).entries()].find(([k]) => k.endsWith('/weights.bin'));
    assert.ok(weightsKey && weightsKey[1] >= 2, `the weights were fetched again after the cut: ${JSON.stringify(weightsKey)}`);
    await waitFor('node-0 to report the model cached', async () => (await node('node-0'))?.models?.cached.includes(big.manifest.hash), 30_000, 100);
  });

  test('a cache of two and a half models: the model in use stays while the least recently used other one goes', async () => {
    const [a, b, c] = [await registerModel('model-a', 1 * MiB, [200, 30, 30]), await registerModel('model-b', 1 * MiB, [30, 200, 30]), await registerModel('model-c', 1 * MiB, [200, 200, 30])];
    // Their pictures differ by a few bytes: the cap holds any two of them and never three.
    const sizes = [a, b, c].map((m) => m.manifest.totalSize);
    const capBytes = Math.floor(2.5 * Math.max(...sizes));
    assert.ok(2 * Math.max(...sizes) <= capBytes && 3 * Math.min(...sizes) > capBytes);
    node1CacheGb = String(capBytes / 1024 ** 3);
    // node-1 alone from here: two slots, so a held job and another can run side by side.
    await farm.nodes[0]!.stop();
    farm.startNode(1);
    await waitFor('node-1 online, node-0 gone', async () => {
      const all = await client().nodes();
      return all.find((n) => n.id === 'node-1')?.status === 'online' && all.find((n) => n.id === 'node-0')?.status !== 'online';
    }, 60_000, 100);
    // Every report node-1 makes from here on must hold A until its eviction is allowed (after step 4, never in this test).
    const reports: string[][] = [];
    const cachedIs = (want: TestModel[]) =>
      waitFor(`node-1 to report ${want.map((m) => m.name).join(' + ')} cached`, async () => {
        const cached = (await node('node-1'))?.models?.cached ?? [];
        reports.push(cached);
        return [...cached].sort().join() === want.map((m) => m.manifest.hash).sort().join() || undefined;
      }, 60_000, 50);
    const gets = (m: TestModel) => Math.max(...modelFileGets(farm.dir, m.manifest).values());

    // 1. A, held by its running job (the generator waits for go-model-a).
    const sa = spec(a, 1);
    const idA = await client().submit(sa);
    await waitFor('the job on model-a to be running', () => seen().some((r) => r.name === a.name), 60_000, 50);
    // 2. B, used after A: both fit.
    go(b);
    const sb = spec(b, 1);
    await assertRendered(await client().submit(sb), sb, b, 1);
    await cachedIs([a, b]);
    // 3. C: room for it means one model goes. A is the least recently used by order but in use: B goes.
    go(c);
    const sc = spec(c, 1);
    await assertRendered(await client().submit(sc), sc, c, 1);
    await cachedIs([a, c]);
    assert.ok(!existsSync(join(modelCacheDir(farm.dir, 1), b.manifest.hash)), "B's files are gone");
    // 4. A's job ends: A is now the most recently used.
    go(a);
    await assertRendered(idA, sa, a, 1);
    // 5. B again: C (used before A's job ended) goes, not A (downloaded first, used last).
    const sb2 = spec(b, 1, 100);
    await assertRendered(await client().submit(sb2), sb2, b, 1);
    await cachedIs([a, b]);
    assert.ok(!existsSync(join(modelCacheDir(farm.dir, 1), c.manifest.hash)), "C's files are gone");

    assert.ok(reports.every((r) => r.includes(a.manifest.hash)), 'A was never evicted');
    assert.deepEqual([gets(a), gets(b), gets(c)], [1, 2, 1], 'A and C downloaded once, B twice (evicted in step 3)');
    for (const r of seen().filter((x) => x.name !== 'model-big')) {
      const m = [a, b, c].find((x) => x.name === r.name)!;
      assert.deepEqual(r, { name: m.name, size: MiB, sha256: m.weightsSha });
    }
  });
});

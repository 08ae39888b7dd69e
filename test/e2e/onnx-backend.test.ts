/**
 * The `onnx` backend end to end over real processes: a coordinator, S3 and
 * gpu-nodes whose node config runs Stable Diffusion in-process with the
 * built-in nightshift-tiny-sd. A sweep renders exactly its images; a
 * renderKey gives the same bytes on either node; seeds differ; previews
 * arrive over SSE before a job is done; img2img from a stored image; a node
 * whose model folder is corrupt fails the job and another node finishes it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { readPngTextChunks } from '@nightshift/common';
import { ensureTinySd } from '@nightshift/models';
import { expandSweep, parseSpec } from '@nightshift/sweep';
import { collectEvents, type Farm, startFarm, tempDir, waitFor, waitForNodes } from '@nightshift/devfarm';

let farm: Farm;
let tmp: ReturnType<typeof tempDir>;
const sse: Record<string, unknown>[] = [];
const sseAbort = new AbortController();

interface JobView {
  id: string;
  state: string;
  renderKey: string;
  node: string | null;
  attempts: number;
  error: string | null;
}

async function post(path: string, body: unknown) {
  const res = await fetch(`${farm.apiUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { id: string; jobs: number; error?: string; details?: { path: string; message: string }[] } };
}

async function submit(spec: unknown): Promise<string> {
  const r = await post('/api/sweeps', spec);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

async function waitDone(id: string, ms = 120_000) {
  return waitFor(`sweep ${id}`, async () => {
    const s = (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as { status: string; counts: Record<string, number>; failedJobs: unknown[] };
    return ['done', 'failed'].includes(s.status) ? s : undefined;
  }, ms, 200);
}

async function jobsOf(id: string): Promise<JobView[]> {
  return ((await (await fetch(`${farm.apiUrl}/api/sweeps/${id}/jobs`)).json()) as { jobs: JobView[] }).jobs;
}

async function nodeStatus(name: string): Promise<string | undefined> {
  const body = (await (await fetch(`${farm.apiUrl}/api/nodes`)).json()) as { nodes: { id: string; name?: string; status: string }[] };
  return body.nodes.find((n) => n.id === name || n.name === name)?.status;
}

async function stopNode(i: number): Promise<void> {
  await farm.nodes[i]!.stop();
  await waitFor(`node-${i} offline`, async () => (await nodeStatus(`node-${i}`)) !== 'online', 30_000);
}

async function startNode(i: number): Promise<void> {
  farm.startNode(i);
  await waitFor(`node-${i} online`, async () => (await nodeStatus(`node-${i}`)) === 'online', 60_000);
}

/** Collects every SSE event of the coordinator from now on. */
async function listen(): Promise<void> {
  await collectEvents(farm.apiUrl, sse, sseAbort.signal);
}

/** Mean absolute difference of two same-sized images' RGB bytes (0…255). */
async function meanDiff(a: Buffer, b: Buffer): Promise<number> {
  const [x, y] = await Promise.all([a, b].map((p) => sharp(p).removeAlpha().raw().toBuffer()));
  let sum = 0;
  for (let i = 0; i < x!.length; i++) sum += Math.abs(x![i]! - y![i]!);
  return sum / x!.length;
}

const SPEC = {
  prompts: ['a red fox in snow', 'a lighthouse at dusk'],
  seeds: [1234, 1235, 1236],
  backend: 'onnx',
  params: { width: 64, height: 64, steps: 8, guidance: 5, sampler: 'euler_a', negative_prompt: 'blurry, low quality' },
};

describe('onnx backend end to end', { timeout: 400_000 }, () => {
  before(async () => {
    tmp = tempDir('nightshift-onnx-e2e-');
    const good = join(tmp.dir, 'onnx-node.yaml');
    writeFileSync(good, 'procedural: false\nonnx:\n  threads: 1\n');
    // Node 2's nightshift-tiny-sd is a copy whose UNet file is garbage.
    const corrupt = join(tmp.dir, 'corrupt-tiny-sd');
    cpSync(await ensureTinySd(join(tmp.dir, 'models')), corrupt, { recursive: true });
    writeFileSync(join(corrupt, 'unet', 'model.onnx'), 'not an onnx model');
    const bad = join(tmp.dir, 'corrupt-node.yaml');
    writeFileSync(bad, `procedural: false\nonnx:\n  threads: 1\n  models:\n    nightshift-tiny-sd: ${corrupt}\n`);
    farm = await startFarm({
      dir: tmp.dir,
      nodes: 2,
      // Retries enough for a job failing on the corrupt node alone until a good node is back.
      env: { NIGHTSHIFT_MAX_ATTEMPTS: '20', NIGHTSHIFT_BLOCKLIST_AFTER: '20' },
      nodeEnv: (i): Record<string, string> => ({ NIGHTSHIFT_NODE_CONFIG: i === 2 ? bad : good }),
    });
    await waitForNodes(farm.apiUrl, 2);
    await listen();
  });

  after(async () => {
    sseAbort.abort();
    await farm?.stop();
    tmp?.cleanup();
  });

  let images: { key: string; renderKey: string; prompt: string; seed: number }[] = [];
  let sweepId = '';

  test('a sweep with "backend":"onnx" renders exactly its images, A1111 parameters in each PNG', async () => {
    const bad = await post('/api/sweeps', { ...SPEC, params: { ...SPEC.params, sampler: 'Euler a' } });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /valid samplers: euler, euler_a, ddim, dpmpp_2m, dpmpp_2m_karras, lcm/);

    sweepId = await submit(SPEC);
    const done = await waitDone(sweepId);
    assert.equal(done.status, 'done', JSON.stringify(done));
    images = ((await (await fetch(`${farm.apiUrl}/api/sweeps/${sweepId}/images`)).json()) as { images: typeof images }).images;
    const expected = expandSweep(parseSpec(SPEC), 100).map((j) => j.renderKey);
    assert.deepEqual(images.map((i) => i.renderKey).sort(), [...expected].sort());
    for (const img of images) {
      const png = await farm.storage.get(img.key);
      const meta = await sharp(png).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', 64, 64]);
      const text = readPngTextChunks(png).parameters ?? '';
      assert.match(text, /^.+\nNegative prompt: blurry, low quality\nSteps: 8, Sampler: Euler a, CFG scale: 5, Seed: \d+, Size: 64x64, Model hash: [0-9a-f]{10}, Model: nightshift-tiny-sd, Backend: onnx$/);
    }
  });

  test('different seeds give different images', async () => {
    const bytes = await Promise.all(images.map((i) => farm.storage.get(i.key)));
    assert.equal(new Set(bytes.map((b) => b.toString('base64'))).size, images.length);
    const fox = images.filter((i) => i.prompt.includes('fox'));
    assert.ok((await meanDiff(await farm.storage.get(fox[0]!.key), await farm.storage.get(fox[1]!.key))) > 1, 'seeds change the pixels visibly');
  });

  test('previews arrive over SSE before the job is done', () => {
    const mine = sse.filter((e) => e.sweepId === sweepId);
    const previewed = mine.filter((e) => e.type === 'progress' && typeof e.preview === 'string' && e.preview.length > 0);
    assert.ok(previewed.length > 0, `no preview among ${mine.length} events`);
    const before = previewed.some((p) => {
      const doneAt = mine.findIndex((e) => e.type === 'job' && e.jobId === p.jobId && e.state === 'done');
      return doneAt > mine.indexOf(p);
    });
    assert.ok(before, 'a preview came before its job was done');
    const webp = Buffer.from(previewed[0]!.preview as string, 'base64');
    assert.equal(webp.subarray(8, 12).toString('latin1'), 'WEBP');
  });

  test('params.batch: exactly its images, each with the pixels of its seed rendered alone; nodes say they run onnx on the CPU', async () => {
    const nodes = ((await (await fetch(`${farm.apiUrl}/api/nodes`)).json()) as { nodes: { capabilities: { executionProvider?: string } }[] }).nodes;
    assert.deepEqual(nodes.map((n) => n.capabilities.executionProvider), ['cpu', 'cpu']);
    const spec = { ...SPEC, params: { ...SPEC.params, batch: 3 } };
    const id = await submit(spec);
    const done = await waitDone(id);
    assert.equal(done.status, 'done', JSON.stringify(done));
    const batched = ((await (await fetch(`${farm.apiUrl}/api/sweeps/${id}/images`)).json()) as { images: ((typeof images)[number] & { renderMs: number | null })[] }).images;
    assert.deepEqual(batched.map((i) => i.renderKey).sort(), expandSweep(parseSpec(spec), 100).map((j) => j.renderKey).sort());
    // Some jobs did share a renderBatch call (else the pixel check below says nothing of batches): each node
    // logs a batch member's "rendered" line with the number of jobs in its call (waited for: a line
    // reaches its log file through this process, after the node wrote it).
    const keys = new Set(batched.map((i) => i.renderKey));
    /** A log line's fields; a line still being written (or not JSON) has none. */
    const parsed = (line: string): { msg?: string; renderKey?: string; batch?: number } => {
      try {
        return JSON.parse(line) as { msg?: string; renderKey?: string; batch?: number };
      } catch {
        return {};
      }
    };
    const inBatches = () =>
      readdirSync(join(tmp.dir, 'logs'))
        .filter((f) => f.startsWith('gpu-node-'))
        .flatMap((f) => readFileSync(join(tmp.dir, 'logs', f), 'utf8').split('\n'))
        .filter((line) => {
        const l = parsed(line);
        return l.msg === 'rendered' && l.renderKey !== undefined && keys.has(l.renderKey) && (l.batch ?? 1) > 1;
      });
    await waitFor('jobs of the sweep rendered in one call', () => inBatches().length >= 2, 10_000, 50);
    // A CPU render costs no GPU time (the node runs onnx on the CPU here): the sweep's GPU hours stay 0.
    const { cost } = (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as { cost: { gpuHours: number } };
    assert.equal(cost.gpuHours, 0);
    const raw = async (key: string) => sharp(await farm.storage.get(key)).raw().toBuffer();
    for (const img of batched) {
      const alone = images.find((i) => i.prompt === img.prompt && i.seed === img.seed)!;
      assert.ok((await raw(img.key)).equals(await raw(alone.key)), `${img.prompt} seed ${img.seed}: batched pixels = alone`);
      assert.match(readPngTextChunks(await farm.storage.get(img.key)).parameters ?? '', /, batch: 3$/);
    }
  });

  test('the same renderKey gives the same bytes on either node', async () => {
    const jobs = await jobsOf(sweepId);
    const job = jobs.find((j) => j.node)!;
    const first = await farm.storage.get(`images/${job.renderKey}.png`);
    const renderer = Number(job.node!.replace('node-', ''));
    const other = 1 - renderer;
    await stopNode(renderer);
    await farm.storage.client.removeObject(farm.storage.bucket, `images/${job.renderKey}.png`);
    await farm.storage.client.removeObject(farm.storage.bucket, `thumbs/${job.renderKey}.webp`);
    const again = await submit(SPEC);
    assert.equal((await waitDone(again)).status, 'done');
    const rerendered = (await jobsOf(again)).find((j) => j.renderKey === job.renderKey)!;
    assert.equal(rerendered.node, `node-${other}`);
    assert.ok((await farm.storage.get(`images/${job.renderKey}.png`)).equals(first), `node-${other} wrote the same bytes as node-${renderer}`);
    await startNode(renderer);
  });

  test('img2img from a stored image', async () => {
    const init = images.find((i) => i.prompt.includes('fox') && i.seed === 1234)!;
    const unrelated = images.find((i) => i.prompt.includes('fox') && i.seed === 1235)!;
    const id = await submit({ prompts: [init.prompt], seeds: [77], backend: 'onnx', params: { width: 64, height: 64, steps: 8, guidance: 5, init: init.key, strength: 0.3 } });
    const done = await waitDone(id);
    assert.equal(done.status, 'done', JSON.stringify(done));
    const [job] = await jobsOf(id);
    const out = await farm.storage.get(`images/${job!.renderKey}.png`);
    const initPng = await farm.storage.get(init.key);
    assert.ok(!out.equals(initPng));
    const near = await meanDiff(out, initPng);
    const far = await meanDiff(await farm.storage.get(unrelated.key), initPng);
    assert.ok(near < far, `img2img at strength 0.3 stays close to its init (${near.toFixed(2)} vs ${far.toFixed(2)} for another seed)`);
    assert.match(readPngTextChunks(out).parameters ?? '', new RegExp(`init: ${init.key.replace(/\./g, '\\.')}, strength: 0\\.3`));

    const missing = await submit({ prompts: ['x'], seeds: [1], backend: 'onnx', params: { width: 64, height: 64, steps: 2, init: 'thumbs/abc.webp' } });
    const failed = await waitFor('bad init fails', async () => (await jobsOf(missing)).find((j) => j.error)?.error ?? undefined, 60_000, 200);
    assert.match(failed, /not a stored image/);
    await post(`/api/sweeps/${missing}/cancel`, {});
  });

  test('a node whose model folder is corrupt fails the job; the sweep finishes on a node that has the model', async () => {
    await stopNode(0);
    await stopNode(1);
    await startNode(2);
    const id = await submit({ prompts: ['a corrupt start'], seeds: [5], backend: 'onnx', params: { width: 64, height: 64, steps: 4 } });
    const error = await waitFor('a failure on node-2', async () => (await jobsOf(id)).find((j) => j.error)?.error ?? undefined, 60_000, 200);
    assert.match(error, /corrupt-tiny-sd.*unet\/model\.onnx/);
    await startNode(0);
    const done = await waitDone(id);
    assert.equal(done.status, 'done', JSON.stringify(done));
    const [job] = await jobsOf(id);
    assert.equal(job!.node, 'node-0');
    assert.ok(job!.attempts >= 2);
  });
});

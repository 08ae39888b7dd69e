/**
 * The exec backend over real processes: nats-server, the S3 server, the
 * coordinator and one gpu-node whose node config (NIGHTSHIFT_NODE_CONFIG)
 * runs the example Node generator. Sweeps go in over HTTP with
 * "backend": "exec"; what comes out is checked through the API, S3, SSE and
 * the process table.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { stringify as toYaml } from 'yaml';
import { parseA1111Parameters, readPngTextChunks } from '@nightshift/common';
import { collectEvents, type Farm, processAlive, startFarm, tempDir, waitFor, waitForNodes } from '@nightshift/devfarm';
import { ensureTinyUpscaler, TINY_UPSCALER_NAME } from '@nightshift/models';

const GENERATOR = fileURLToPath(new URL('../../examples/generators/node-generator.mjs', import.meta.url));
const ARGS = ['--prompt={prompt}', '--seed={seed}', '--width={width}', '--height={height}', '--steps={steps}', '--output={output}', '--preview={preview}', '--params={params}'];

interface SweepBody {
  id: string;
  status: string;
  counts: Record<string, number>;
  failedJobs?: { jobId: string; error: string; logTail: string }[];
}

let farm: Farm;
let tmp: ReturnType<typeof tempDir>;
let home: string;
const sse: Record<string, unknown>[] = [];
const sseAbort = new AbortController();

async function api<T>(p: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(`${farm.apiUrl}${p}`, { ...init, headers: { 'content-type': 'application/json', ...init?.headers } });
  return { status: res.status, body: (await res.json()) as T };
}

async function submit(spec: Record<string, unknown>): Promise<string> {
  const res = await api<{ id: string; jobs: number }>('/api/sweeps', { method: 'POST', body: JSON.stringify({ backend: 'exec', seeds: [1], ...spec }) });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id;
}

async function finished(id: string, timeoutMs = 30_000): Promise<SweepBody> {
  return waitFor(`sweep ${id} to finish`, async () => {
    const { body } = await api<SweepBody>(`/api/sweeps/${id}`);
    return ['done', 'failed', 'cancelled'].includes(body.status) ? body : undefined;
  }, timeoutMs, 100);
}

const alive = processAlive;

/** Collects every SSE event of the coordinator from now on. */
async function listen(): Promise<void> {
  await collectEvents(farm.apiUrl, sse, sseAbort.signal);
}

describe('exec backend end to end', { timeout: 180_000 }, () => {
  before(async () => {
    tmp = tempDir();
    // The node's HOME is a scratch folder with a canary: a hostile prompt
    // that did reach a shell could only ever hit this folder.
    home = path.join(tmp.dir, 'home');
    mkdirSync(home);
    writeFileSync(path.join(home, 'canary'), 'still here');
    const generator = (name: string, timeoutMs: number) => ({ name, command: [process.execPath, GENERATOR, ...ARGS], timeoutMs, killGraceMs: 400 });
    const nodeConfig = path.join(tmp.dir, 'node-config.yaml');
    writeFileSync(
      nodeConfig,
      toYaml({
        procedural: true,
        generators: [generator('example', 20_000), generator('quick-timeout', 800)],
        upscale: { model: await ensureTinyUpscaler(path.join(tmp.dir, 'models')), tileSize: 64 },
      }),
    );
    // Two nodes: the scheduler retries a failed job on a node that has not
    // failed it yet, so two attempts (MAX_ATTEMPTS=2) need two nodes.
    farm = await startFarm({
      dir: tmp.dir,
      nodes: 2,
      env: { NIGHTSHIFT_MAX_ATTEMPTS: '2' },
      nodeEnv: () => ({ NIGHTSHIFT_NODE_CONFIG: nodeConfig, HOME: home }),
    });
    await waitForNodes(farm.apiUrl, 2);
    await listen();
  });

  after(async () => {
    sseAbort.abort();
    await farm?.stop();
    tmp?.cleanup();
  });

  test('the node advertises exec with its generators (and upscale with its model)', async () => {
    const { body } = await api<{ nodes: { capabilities: { backends: string[]; models: string[] } }[] }>('/api/nodes');
    assert.equal(body.nodes.length, 2);
    for (const { capabilities: caps } of body.nodes) {
      assert.deepEqual([...caps.backends].sort(), ['exec', 'procedural', 'upscale']);
      for (const m of ['example', 'quick-timeout', TINY_UPSCALER_NAME]) assert.ok(caps.models.includes(m), `model ${m} advertised`);
    }
  });

  test('a sweep renders with the example generator; progress and previews arrive over SSE', async () => {
    const id = await submit({ prompts: ['a red circle', 'a blue square'], seeds: [1, 2], params: { width: 64, height: 64, steps: 8, sleepMs: 40 } });
    const done = await finished(id);
    assert.equal(done.status, 'done', JSON.stringify(done));
    assert.equal(done.counts.done, 4);
    const { body } = await api<{ images: { key: string; prompt: string; seed: number }[] }>(`/api/sweeps/${id}/images`);
    assert.equal(body.images.length, 4);
    for (const img of body.images) {
      const png = await farm.storage.get(img.key);
      const meta = await sharp(png).metadata();
      assert.deepEqual([meta.width, meta.height], [64, 64]);
      const params = parseA1111Parameters(readPngTextChunks(png).parameters!);
      assert.equal(params.prompt, img.prompt);
      assert.equal(params.params.Seed, String(img.seed));
    }
    await waitFor('progress events over SSE', () => {
      const mine = sse.filter((e) => e.type === 'progress' && e.sweepId === id);
      return mine.some((e) => e.step === 8 && e.total === 8) && mine.some((e) => Object.keys(e).some((k) => k.startsWith('preview') && e[k]));
    }, 5_000);
  });

  test('hostile prompts arrive verbatim as one argument and run nothing', async () => {
    const prompts = [
      '"; rm -rf ~; echo "',
      `$(touch ${tmp.dir}/pwned-1)`,
      `\`touch ${tmp.dir}/pwned-2\``,
      `'; touch ${tmp.dir}/pwned-3; echo '`,
      `x && touch ${tmp.dir}/pwned-4 | cat {output} {seed} $HOME`,
    ];
    const promptDir = path.join(tmp.dir, 'prompts');
    const id = await submit({ prompts, params: { width: 64, height: 64, steps: 2, promptDir } });
    const done = await finished(id);
    assert.equal(done.status, 'done', JSON.stringify(done));
    const received = readdirSync(promptDir).map((f) => readFileSync(path.join(promptDir, f), 'utf8'));
    assert.deepEqual(received.sort(), [...prompts].sort());
    for (let i = 1; i <= 4; i++) assert.equal(existsSync(path.join(tmp.dir, `pwned-${i}`)), false);
    assert.equal(readFileSync(path.join(home, 'canary'), 'utf8'), 'still here');
  });

  test('a failing generator: the log tail is visible through the API after the retry', async () => {
    const id = await submit({ prompts: ['this one fails'], params: { width: 64, height: 64, steps: 4, simulate: 'fail' } });
    const done = await finished(id);
    assert.equal(done.status, 'failed');
    const failed = done.failedJobs?.[0];
    assert.ok(failed, JSON.stringify(done));
    assert.match(failed.error, /generator "example" exited with code 3/);
    assert.match(failed.logTail, /RuntimeError: simulated generator failure/);
    assert.match(failed.logTail, /prompt="this one fails"/);
    const { body } = await api<{ jobs: { attempts: number }[] }>(`/api/sweeps/${id}/jobs`);
    assert.equal(body.jobs[0]!.attempts, 2, 'retried (on the other node) up to MAX_ATTEMPTS before failing');
  });

  test('a generator that hangs is stopped at its timeout', async () => {
    const id = await submit({ prompts: ['this one hangs'], model: 'quick-timeout', params: { width: 64, height: 64, steps: 4, simulate: 'hang' } });
    const done = await finished(id);
    assert.equal(done.status, 'failed');
    assert.match(done.failedJobs?.[0]?.error ?? '', /generator "quick-timeout" timed out after 800 ms/);
    assert.match(done.failedJobs?.[0]?.logTail ?? '', /hanging/);
  });

  test('cancelling a sweep kills the generator’s whole process group: no orphan left', async () => {
    const pidDir = path.join(tmp.dir, 'pids');
    // The generator and its child both ignore SIGTERM, so this also proves the SIGKILL after the grace period.
    const id = await submit({ prompts: ['cancel me'], params: { width: 64, height: 64, steps: 4, simulate: 'hang', pidDir, ignoreTerm: true } });
    const pids = await waitFor('the generator and its child to start', () => {
      const read = (f: string) => (existsSync(path.join(pidDir, f)) ? Number(readFileSync(path.join(pidDir, f), 'utf8')) : 0);
      const [g, c] = [read('generator.pid'), read('child.pid')];
      return g && c ? { generator: g, child: c } : undefined;
    }, 15_000, 50);
    assert.ok(alive(pids.generator) && alive(pids.child));
    const res = await api<SweepBody>(`/api/sweeps/${id}/cancel`, { method: 'POST' });
    assert.equal(res.status, 200);
    await waitFor('the process group to be gone', () => !alive(pids.generator) && !alive(pids.child), 10_000, 50);
    assert.equal((await finished(id)).status, 'cancelled');
  });
});

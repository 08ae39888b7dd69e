/**
 * The walking skeleton end to end, over real processes: nats-server with
 * JetStream, the S3 server, the coordinator, two gpu-nodes and the indexer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { create } from '@bufbuild/protobuf';
import { jetstreamManager, jetstream, AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';
import { createClient, JobAssignmentSchema, SweepService } from '@nightshift/proto';
import { parseA1111Parameters, readPngTextChunks, createLogger, STREAM, SUBJECTS } from '@nightshift/common';
import { defaultBackends, Worker } from '@nightshift/gpu-node';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';

const MAX_JOBS = 1000;
const SPEC = {
  name: 'skeleton',
  prompts: ['a red circle', 'a blue square', 'green stripes'],
  axes: { style: ['', 'watercolor'] },
  seeds: { start: 100, count: 4 },
  params: { width: 128, height: 128, steps: 12 },
};

interface SweepBody {
  id: string;
  status: string;
  counts: Record<string, number>;
  rate: number | null;
  etaSeconds: number | null;
}
interface ImageBody {
  key: string;
  url: string;
  thumbUrl: string;
  renderKey: string;
  prompt: string;
  seed: number;
  params: Record<string, unknown>;
  node: string;
  jobId: string;
}

let farm: Farm;
let tmp: ReturnType<typeof tempDir>;

async function api<T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(`${farm.apiUrl}${path}`, { ...init, headers: { 'content-type': 'application/json', ...init?.headers } });
  return { status: res.status, body: (await res.json()) as T };
}

async function submit(spec: unknown) {
  return api<{ id: string; jobs: number; error?: string; details?: { path: string; message: string }[] }>('/api/sweeps', {
    method: 'POST',
    body: JSON.stringify(spec),
  });
}

async function waitDone(id: string): Promise<SweepBody> {
  return waitFor(`sweep ${id} to finish`, async () => {
    const { body } = await api<SweepBody>(`/api/sweeps/${id}`);
    return body.status === 'done' ? body : undefined;
  }, 90_000, 200);
}

describe('walking skeleton', { timeout: 240_000 }, () => {
  let sweepId: string;
  let images: ImageBody[];

  before(async () => {
    tmp = tempDir();
    farm = await startFarm({ dir: tmp.dir, nodes: 2, indexer: true, env: { NIGHTSHIFT_MAX_JOBS: String(MAX_JOBS) } });
    await waitForNodes(farm.apiUrl, 2);
    const res = await submit(SPEC);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.jobs, 24);
    sweepId = res.body.id;
    const done = await waitDone(sweepId);
    assert.deepEqual(done.counts, { queued: 0, running: 0, done: 24, failed: 0, skipped: 0, cancelled: 0 });
    // ETA comes from observed throughput: finished now, so a rate and nothing left.
    assert.ok(typeof done.rate === 'number' && done.rate > 0, `rate: ${done.rate}`);
    assert.equal(done.etaSeconds, 0);
    images = (await api<{ images: ImageBody[] }>(`/api/sweeps/${sweepId}/images`)).body.images;
  });

  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  test('24 distinct PNGs and 24 thumbnails land in S3', async () => {
    assert.equal(images.length, 24);
    const pngs = await farm.storage.list('images');
    const thumbs = await farm.storage.list('thumbs');
    assert.equal(pngs.length, 24);
    assert.equal(thumbs.length, 24);
    assert.deepEqual(new Set(pngs), new Set(images.map((i) => i.key)));
    assert.deepEqual(new Set(thumbs), new Set(images.map((i) => `thumbs/${i.renderKey}.webp`)));
    // URLs resolve through the coordinator's file route.
    const res = await fetch(images[0]!.thumbUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/webp');
  });

  test('each PNG carries its prompt and seed in the A1111 parameters chunk', async () => {
    for (const img of images) {
      const png = await farm.storage.get(img.key);
      const text = readPngTextChunks(png).parameters;
      assert.ok(text, `no parameters chunk in ${img.key}`);
      const parsed = parseA1111Parameters(text);
      assert.equal(parsed.prompt, img.prompt);
      assert.equal(parsed.params.Seed, String(img.seed));
      assert.equal(parsed.params.Size, '128x128');
      assert.equal(parsed.params.Steps, '12');
    }
  });

  test('exactly 24 image.rendered events, one per render, in the stream', async () => {
    const nc = await connect({ servers: farm.nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await waitFor('outbox to drain', async () => {
        const info = await jsm.streams.info(STREAM, { subjects_filter: SUBJECTS.imageRendered });
        return info.state.subjects?.[SUBJECTS.imageRendered] === 24;
      });
      // Read them back with a fresh consumer to check contents, not just the count.
      await jsm.consumers.add(STREAM, { durable_name: 'test-reader', ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, filter_subject: SUBJECTS.imageRendered });
      const c = await jetstream(nc).consumers.get(STREAM, 'test-reader');
      const iter = await c.fetch({ max_messages: 100, expires: 1_000 });
      const events: { renderKey: string; sweepId: string; prompt: string; seed: number; node: string }[] = [];
      for await (const m of iter) events.push(m.json());
      assert.equal(events.length, 24);
      assert.deepEqual(new Set(events.map((e) => e.renderKey)), new Set(images.map((i) => i.renderKey)));
      assert.ok(events.every((e) => e.sweepId === sweepId && e.prompt && Number.isInteger(e.seed) && e.node));
    } finally {
      await nc.close();
    }
  });

  test('both gpu-nodes rendered some of the jobs', () => {
    const byNode = new Map<string, number>();
    for (const img of images) byNode.set(img.node, (byNode.get(img.node) ?? 0) + 1);
    assert.deepEqual([...byNode.keys()].sort(), ['node-0', 'node-1']);
    assert.ok([...byNode.values()].every((n) => n > 0));
  });

  test('searching a colour word ranks that colour first', async () => {
    await waitFor('indexer to index 24 images', async () => {
      const h = (await (await fetch(`${farm.indexerUrl}/healthz`)).json()) as { indexed: number };
      return h.indexed === 24;
    }, 60_000, 200);
    for (const [word, prompt] of [['red', 'a red circle'], ['blue', 'a blue square'], ['green', 'green stripes']] as const) {
      const { status, body } = await api<{ results: { prompt: string; score: number; key: string }[] }>(`/api/search?q=${word}&k=8`);
      assert.equal(status, 200);
      assert.equal(body.results.length, 8);
      // 8 images (2 styles × 4 seeds) were rendered from that prompt: they must be the top 8.
      for (const r of body.results) assert.ok(r.prompt.startsWith(prompt), `"${word}" returned "${r.prompt}" in its top 8`);
      const below = (await api<{ results: { prompt: string; score: number }[] }>(`/api/search?q=${word}&k=9`)).body.results[8]!;
      assert.ok(body.results[7]!.score > below.score, `"${word}": no gap between matching and other images`);
    }
  });

  test('rendering is deterministic: the same renderKey gives the same bytes', async () => {
    const img = images.find((i) => i.prompt === 'a blue square, watercolor' && i.seed === 102)!;
    const job = (await api<{ jobs: { id: string; renderKey: string; prompt: string; seed: number }[] }>(`/api/sweeps/${sweepId}/jobs`)).body.jobs.find(
      (j) => j.renderKey === img.renderKey,
    )!;
    const puts = new Map<string, Buffer>();
    const reports: string[] = [];
    const worker = new Worker({
      nodeId: 'again',
      slots: 1,
      backends: defaultBackends(),
      storage: { exists: async () => false, get: (key) => farm.storage.get(key), put: async (key, body) => void puts.set(key, body) },
      report: (r) => reports.push(r.case),
      log: createLogger('test', 'silent'),
    });
    worker.start();
    worker.assign(
      create(JobAssignmentSchema, {
        jobId: job.id,
        sweepId,
        renderKey: img.renderKey,
        prompt: img.prompt,
        seed: BigInt(img.seed),
        paramsJson: JSON.stringify(img.params),
        backend: 'procedural',
        model: PROCEDURAL_MODEL,
      }),
    );
    await waitFor('re-render', () => reports.includes('completed'));
    await worker.stop();
    const again = puts.get(img.key)!;
    const stored = await farm.storage.get(img.key);
    assert.ok(again.length > 0);
    assert.ok(again.equals(stored), 'a second render of the same renderKey differs from the stored PNG');
  });

  test('invalid sweeps get a readable 400 and store nothing', async () => {
    const dbFile = join(tmp.dir, 'coordinator', 'coordinator.sqlite');
    const count = () => {
      const db = new Database(dbFile, { readonly: true, fileMustExist: true });
      try {
        const s = (db.prepare('SELECT COUNT(*) AS n FROM sweeps').get() as { n: number }).n;
        const j = (db.prepare('SELECT COUNT(*) AS n FROM jobs').get() as { n: number }).n;
        return { s, j };
      } finally {
        db.close();
      }
    };
    const beforeCounts = count();
    const cases: [string, unknown, RegExp][] = [
      ['missing prompts', { seeds: { count: 2 } }, /prompts/],
      ['zero seeds', { prompts: ['x'], seeds: { count: 0 } }, /seeds/],
      ['negative seeds', { prompts: ['x'], seeds: { count: -5 } }, /seeds/],
      ['non-numeric size', { prompts: ['x'], seeds: { count: 1 }, params: { width: 'large' } }, /params\.width: must be a number/],
      ['unknown backend', { prompts: ['x'], seeds: { count: 1 }, backend: 'midjourney' }, /backend must be one of/],
      ['too many jobs', { prompts: ['x', 'y'], seeds: { count: 600 } }, /expands to 1200 jobs, more than the maximum of 1000/],
    ];
    for (const [what, spec, re] of cases) {
      const res = await submit(spec);
      assert.equal(res.status, 400, what);
      assert.match(res.body.error ?? '', re, what);
      assert.ok(Array.isArray(res.body.details), what);
    }
    const raw = await fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompts": [' });
    assert.equal(raw.status, 400);
    assert.deepEqual(count(), beforeCounts);
  });

  test('gRPC SubmitSweep and HTTP submission produce the same jobs', async () => {
    const spec = { prompts: ['a yellow triangle', 'purple circles'], axes: { mood: ['calm', 'wild'] }, seeds: [5, 6], params: { width: 64, height: 64, steps: 4 } };
    const client = createClient(SweepService, farm.grpcAddress);
    try {
      const viaGrpc = await client.submitSweep({ specJson: JSON.stringify(spec) });
      const viaHttp = await submit(spec);
      assert.equal(viaGrpc.jobs, 8);
      assert.equal(viaHttp.body.jobs, 8);
      type J = { index: number; renderKey: string; prompt: string; seed: number };
      const jobsOf = async (id: string) => (await api<{ jobs: J[] }>(`/api/sweeps/${id}/jobs`)).body.jobs.map((j) => [j.index, j.renderKey, j.prompt, j.seed]);
      assert.deepEqual(await jobsOf(viaGrpc.id), await jobsOf(viaHttp.body.id));
      const got = await client.getSweep({ id: viaGrpc.id });
      assert.equal(got.sweep?.total, 8);
      await assert.rejects(client.submitSweep({ specJson: JSON.stringify({ prompts: [] }) }), /needs at least one prompt/);
      await waitDone(viaGrpc.id);
      await waitDone(viaHttp.body.id);
    } finally {
      client.close();
    }
  });

  test('re-submitting a finished sweep renders nothing new', async () => {
    const imagesBefore = (await farm.storage.list('images')).length;
    const nc = await connect({ servers: farm.nats.url });
    const rendered = async () => (await (await jetstreamManager(nc)).streams.info(STREAM, { subjects_filter: SUBJECTS.imageRendered })).state.subjects?.[SUBJECTS.imageRendered];
    try {
      const eventsBefore = await rendered();
      const again = await submit(SPEC);
      assert.equal(again.status, 201);
      const done = await waitDone(again.body.id);
      assert.deepEqual(done.counts, { queued: 0, running: 0, done: 0, failed: 0, skipped: 24, cancelled: 0 });
      assert.equal((await farm.storage.list('images')).length, imagesBefore);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await rendered(), eventsBefore);
    } finally {
      await nc.close();
    }
  });
});

/**
 * Dynamic prompts on a real farm (nats-server, s3rver, coordinator, a
 * gpu-node as processes): a wildcard list put with the CLI lands in the
 * bucket, the preview shows the lines the sweep will use, the sweep stores
 * exactly those prompts (and the rendered PNGs carry them), and a rerun of
 * the same spec (over HTTP or gRPC) makes the same choices, so it renders
 * nothing new.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { main } from '@nightshift/cli';
import { createClient, SweepService } from '@nightshift/proto';
import { parseA1111Parameters, readPngTextChunks, wildcardKey } from '@nightshift/common';
import { startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

const LINES = ['a red fox', 'a blue whale', 'a green frog', 'an orange cat', 'a {striped|spotted} owl'];
const SPEC = { name: 'wildcards', prompts: ['__animals__ {at dawn|at dusk}'], axes: { style: ['ink', 'oil'] }, seeds: { start: 10, count: 3 }, params: { width: 64, height: 64, steps: 4 } };

interface Job {
  prompt: string;
  seed: number;
  axes: Record<string, string>;
  renderKey: string;
}
interface Sweep {
  status: string;
  counts: Record<string, number>;
}

describe('wildcards and dynamic prompts on a real farm', { timeout: 180_000 }, () => {
  let farm: Farm;
  let tmp: ReturnType<typeof tempDir>;

  before(async () => {
    tmp = tempDir();
    farm = await startFarm({ dir: tmp.dir, nodes: 1 });
    await waitForNodes(farm.apiUrl, 1);
  });
  after(async () => {
    await farm?.stop();
    tmp?.cleanup();
  });

  const api = async <T>(path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${farm.apiUrl}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    assert.ok(res.ok, `${path}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };
  const cli = async (...args: string[]) => {
    let out = '';
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) });
    const code = await main(['node', 'nightshift', '--url', farm.apiUrl, ...args], { out: sink, err: sink, env: {} });
    return { code, out };
  };
  const finished = (id: string) =>
    waitFor(`sweep ${id} to finish`, async () => {
      const s = await api<Sweep>(`/api/sweeps/${id}`);
      return s.status === 'done' ? s : undefined;
    }, 90_000, 200);

  test('put a list, preview, submit: the stored prompts are the previewed ones; a rerun renders nothing new', async () => {
    const file = join(tmp.dir, 'animals.txt');
    writeFileSync(file, `# animals\n${LINES.join('\n')}\n`);
    assert.deepEqual(await cli('wildcards', 'put', 'animals', file), { code: 0, out: 'stored __animals__: 5 line(s)\n' });
    assert.ok(await farm.storage.client.statObject(farm.storage.bucket, wildcardKey('animals')), 'the list is an object in the bucket');
    const listed = await cli('--json', 'wildcards', 'list');
    assert.deepEqual(JSON.parse(listed.out), { wildcards: [{ name: 'animals', lines: 5 }] });

    const preview = await api<{ jobs: number; samples: { prompt: string; axes: Record<string, string> }[] }>('/api/sweeps/preview', SPEC);
    assert.equal(preview.jobs, 6);
    const line = /^(a red fox|a blue whale|a green frog|an orange cat|a (striped|spotted) owl) at (dawn|dusk), (ink|oil)$/;
    for (const s of preview.samples) assert.match(s.prompt, line);

    // The CLI's dry run asks the farm for the lists the spec uses, and expands the same way.
    const specFile = join(tmp.dir, 'spec.json');
    writeFileSync(specFile, JSON.stringify(SPEC));
    const dry = await cli('--json', 'submit', '--dry-run', specFile);
    assert.equal(dry.code, 0, dry.out);
    assert.deepEqual((JSON.parse(dry.out) as { prompts: string[] }).prompts, [...new Set(preview.samples.map((s) => s.prompt))]);

    const first = await api<{ id: string; jobs: number }>('/api/sweeps', SPEC);
    assert.equal(first.jobs, 6);
    const done = await finished(first.id);
    assert.equal(done.counts.done, 6);
    const jobs = (await api<{ jobs: Job[] }>(`/api/sweeps/${first.id}/jobs`)).jobs;
    // The preview expands the first seed: its samples are those jobs, in order.
    assert.deepEqual(jobs.filter((j) => j.seed === 10).map((j) => [j.prompt, j.axes.style]), preview.samples.map((s) => [s.prompt, s.axes.style]));
    for (const j of jobs) assert.match(j.prompt, line);
    assert.ok(new Set(jobs.map((j) => j.prompt)).size > 1, 'seeds make different choices');

    // The rendered image carries the chosen prompt, not the template.
    const images = (await api<{ images: { key: string; prompt: string; renderKey: string }[] }>(`/api/sweeps/${first.id}/images`)).images;
    const png = await farm.storage.get(images[0]!.key);
    const stamped = parseA1111Parameters(readPngTextChunks(png).parameters ?? '');
    assert.equal(stamped.prompt, images[0]!.prompt);

    const rerun = await api<{ id: string }>('/api/sweeps', SPEC);
    const again = await finished(rerun.id);
    assert.deepEqual({ done: again.counts.done, skipped: again.counts.skipped }, { done: 0, skipped: 6 }, 'same choices, same render keys: found in storage');
    const rerunJobs = (await api<{ jobs: Job[] }>(`/api/sweeps/${rerun.id}/jobs`)).jobs;
    assert.deepEqual(rerunJobs.map((j) => j.renderKey), jobs.map((j) => j.renderKey));

    // gRPC SubmitSweep reads the lists too, and makes the same choices.
    const grpc = createClient(SweepService, farm.grpcAddress);
    try {
      const viaGrpc = await grpc.submitSweep({ specJson: JSON.stringify(SPEC) });
      assert.deepEqual((await api<{ jobs: Job[] }>(`/api/sweeps/${viaGrpc.id}/jobs`)).jobs.map((j) => j.renderKey), jobs.map((j) => j.renderKey));
      await finished(viaGrpc.id);
    } finally {
      grpc.close();
    }

    assert.equal((await cli('wildcards', 'rm', 'animals')).code, 0);
    const refused = await fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(SPEC) });
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /prompts\.0.*unknown wildcard list __animals__/);
    const dryRefused = await cli('submit', '--dry-run', specFile);
    assert.equal(dryRefused.code, 2);
    assert.match(dryRefused.out, /prompts\.0: unknown wildcard list __animals__/);
  });
});

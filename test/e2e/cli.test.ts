/**
 * The `nightshift` CLI as a user runs it (a separate process): helpful errors
 * without a farm, then against a real farm whose second gpu-node is started
 * by `nightshift node start`: submit --watch to completion, status/search
 * with --json parsed, favorites.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startFarm, tempDir, waitFor, waitForNodes, type Farm } from '@nightshift/devfarm';

const CLI = fileURLToPath(new URL('../../packages/cli/src/main.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with a clean NIGHTSHIFT_* environment plus `env`. */
function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NIGHTSHIFT_')));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('nightshift CLI without a farm', { timeout: 120_000 }, () => {
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    tmp = tempDir();
  });
  after(() => tmp?.cleanup());

  test('a bad spec file is reported with file, line and field, and nothing is sent', async () => {
    const file = join(tmp.dir, 'bad.yaml');
    writeFileSync(file, ['name: bad', 'prompts:', '  - a red circle', 'seeds: { start: 0, count: 0 }', 'params:', '  width: 100', 'backend: midjourney', ''].join('\n'));
    // An unreachable --url proves the file is checked before any request.
    const r = await cli(['--url', `http://127.0.0.1:${await freePort()}`, 'submit', file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /bad\.yaml: invalid sweep spec/);
    assert.match(r.stderr, /bad\.yaml:4:\d+ +seeds\.count: must be at least 1/);
    assert.match(r.stderr, /bad\.yaml:6:\d+ +params\.width: must be a multiple of 8/);
    assert.match(r.stderr, /bad\.yaml:7:\d+ +backend: backend must be one of: procedural, exec/);
  });

  test('unreadable and malformed files say why', async () => {
    const missing = await cli(['submit', join(tmp.dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*nope\.yaml: no such file/);
    const broken = join(tmp.dir, 'broken.yaml');
    writeFileSync(broken, 'prompts: [a red circle\nseeds: 3\n');
    const r = await cli(['submit', broken]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /broken\.yaml: not valid YAML or JSON\n {2}.*broken\.yaml:\d+:\d+/);
  });

  test('an unreachable coordinator is named, with what to check', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await cli(['status'], { NIGHTSHIFT_URL: url });
    assert.equal(r.code, 3);
    assert.match(r.stderr, new RegExp(`cannot reach the coordinator at ${url.replace(/\./g, '\\.')} \\(connection refused`));
    assert.match(r.stderr, /nightshift up/);
    assert.match(r.stderr, /--url or NIGHTSHIFT_URL/);
    const bad = await cli(['--url', 'not a url', 'nodes']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /is not a URL/);
  });

  test('--help works for the program and every command', async () => {
    const top = await cli(['--help']);
    assert.equal(top.code, 0);
    for (const cmd of ['up', 'submit', 'status', 'watch', 'search', 'nodes', 'cancel', 'pause', 'resume', 'favorite', 'upscale', 'node']) assert.match(top.stdout, new RegExp(`\\n  ${cmd}\\b`));
    const sub = await cli(['search', '--help']);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /Usage: nightshift search \[options\] \[text\.\.\.\]/);
    assert.match(sub.stdout, /--url <url>/, 'global options are listed in command help');
    const node = await cli(['node', 'start', '--help']);
    assert.equal(node.code, 0);
    assert.match(node.stdout, /--coordinator <host:port>/);
    const wrong = await cli(['search', '--k', 'many', 'red']);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /k must be an integer/);
  });
});

describe('nightshift CLI against a farm', { timeout: 300_000 }, () => {
  let farm: Farm;
  let tmp: ReturnType<typeof tempDir>;
  let node: ChildProcess | undefined;
  let nodeLog = '';
  let env: Record<string, string>;
  let sweepId = '';
  const specFile = () => join(tmp.dir, 'sweep.yaml');

  before(async () => {
    tmp = tempDir();
    farm = await startFarm({ dir: tmp.dir, nodes: 1, indexer: true });
    env = { NIGHTSHIFT_URL: farm.apiUrl };
    // The farm's second gpu-node comes from `nightshift node start`, as on a second machine.
    node = spawn(
      process.execPath,
      ['--import', TSX, CLI, 'node', 'start', '--coordinator', farm.grpcAddress, '--s3-endpoint', farm.s3.endpoint, '--s3-access-key', farm.s3.accessKey, '--s3-secret-key', farm.s3.secretKey, '--id', 'cli-node', '--name', 'cli-node', '--data-dir', join(tmp.dir, 'cli-node')],
      { env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NIGHTSHIFT_'))) as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    node.stdout!.on('data', (b: Buffer) => (nodeLog += b.toString()));
    node.stderr!.on('data', (b: Buffer) => (nodeLog += b.toString()));
    await waitForNodes(farm.apiUrl, 2).catch((err: Error) => {
      throw new Error(`${err.message}\nnightshift node start said:\n${nodeLog}`);
    });
    writeFileSync(
      specFile(),
      ['name: cli sweep', 'prompts:', '  - a red circle', '  - a blue square', '  - green stripes', 'axes:', '  style: ["", watercolor]', 'seeds: { start: 0, count: 2 }', 'params: { width: 128, height: 128, steps: 10 }', ''].join('\n'),
    );
  });

  after(async () => {
    if (node && node.exitCode === null) {
      const exited = new Promise((r) => node!.once('exit', r));
      node.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (node.exitCode === null) node.kill('SIGKILL');
    }
    await farm?.stop();
    tmp?.cleanup();
  });

  test('nodes --json lists the farm node and the one `node start` runs', async () => {
    const r = await cli(['nodes', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const { nodes } = JSON.parse(r.stdout) as { nodes: { id: string; status: string; capabilities: { backends: string[] } }[] };
    assert.deepEqual(nodes.map((n) => n.id).sort(), ['cli-node', 'node-0']);
    assert.ok(nodes.every((n) => n.status === 'online' && n.capabilities.backends.includes('procedural')));
    const text = await cli(['nodes'], env);
    assert.match(text.stdout, /^NODE +STATUS +GPU/m);
    assert.match(text.stdout, /cli-node +online/);
  });

  test('submit --watch follows the sweep to completion', async () => {
    const r = await cli(['submit', specFile(), '--watch'], env);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const m = /submitted .*sweep\.yaml as sweep (sw-[0-9a-f]+) \(12 jobs\)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    sweepId = m[1]!;
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[lines.length - 1]!, new RegExp(`^${sweepId} done: 12/12 \\(100%\\) — 12 done$`));
    const images = (await (await fetch(`${farm.apiUrl}/api/sweeps/${sweepId}/images`)).json()) as { images: { node: string }[] };
    assert.equal(images.images.length, 12);
    assert.ok(images.images.some((i) => i.node === 'cli-node'), 'the node started by the CLI rendered some of it');
  });

  test('status, submit and watch give parseable --json', async () => {
    assert.ok(sweepId);
    const one = await cli(['status', sweepId, '--json'], env);
    assert.equal(one.code, 0, one.stderr);
    const s = JSON.parse(one.stdout) as { id: string; status: string; total: number; counts: { done: number } };
    assert.equal(s.id, sweepId);
    assert.equal(s.status, 'done');
    assert.equal(s.counts.done, 12);
    const all = JSON.parse((await cli(['--json', 'status'], env)).stdout) as { sweeps: { id: string }[] };
    assert.ok(all.sweeps.some((x) => x.id === sweepId));

    const again = await cli(['submit', specFile(), '--priority', '3', '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    const sub = JSON.parse(again.stdout) as { id: string; jobs: number };
    assert.equal(sub.jobs, 12);
    const watched = await cli(['watch', sub.id, '--json'], env);
    assert.equal(watched.code, 0, watched.stderr);
    const w = JSON.parse(watched.stdout) as { id: string; status: string; priority: number; counts: { skipped: number; done: number } };
    assert.equal(w.id, sub.id);
    assert.equal(w.status, 'done');
    assert.equal(w.priority, 3);
    assert.equal(w.counts.skipped + w.counts.done, 12, 'a rerun of the same renders finishes (found in storage)');
  });

  test('search prints matches, --json parses, favorite marks an image', async () => {
    await waitFor('the indexer to index 12 images', async () => {
      const h = (await (await fetch(`${farm.indexerUrl}/healthz`)).json()) as { indexed: number };
      return h.indexed >= 12;
    }, 60_000, 200);
    const r = await cli(['search', 'red', '--k', '4', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const { results } = JSON.parse(r.stdout) as { results: { key: string; prompt: string; score: number; url: string; favorite: boolean }[] };
    assert.equal(results.length, 4);
    for (const x of results) assert.match(x.prompt, /^a red circle/);
    assert.ok(results[0]!.url.startsWith(farm.apiUrl), 'URLs are absolute, ready to fetch');

    const text = await cli(['search', 'blue', 'square', '-k', '2'], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^SCORE +FAV +SEED +KEY +PROMPT/m);
    assert.match(text.stdout, /a blue square/);

    const fav = await cli(['favorite', results[0]!.key], env);
    assert.equal(fav.code, 0, fav.stderr);
    assert.match(fav.stdout, /is now a favorite/);
    const favs = JSON.parse((await cli(['search', 'red', '--favorites', '--json'], env)).stdout) as { results: { key: string; favorite: boolean }[] };
    assert.deepEqual(favs.results.map((x) => [x.key, x.favorite]), [[results[0]!.key, true]]);
  });

  test('API errors come back readable', async () => {
    const r = await cli(['status', 'sw-000000000000'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no sweep sw-000000000000 on the coordinator at http:\/\/127\.0\.0\.1:\d+/);
    const bad = join(tmp.dir, 'too-big.yaml');
    writeFileSync(bad, 'prompts: [x]\naxes: { a: [1, 2], b: [1, 2] }\nseeds: { count: 100000 }\n');
    const big = await cli(['submit', bad], env);
    assert.equal(big.code, 2);
    assert.match(big.stderr, /too-big\.yaml: the coordinator refused it: sweep too large/);
    assert.match(big.stderr, /expands to 400000 jobs, more than the maximum of 100000/);
  });

  test('pause, resume and cancel a running sweep', async () => {
    const file = join(tmp.dir, 'long.yaml');
    // Big enough (and 512 px) that it is still running while the commands go through.
    writeFileSync(file, 'name: long\nprompts: [a purple circle]\nseeds: { start: 1000, count: 400 }\nparams: { width: 512, height: 512, steps: 60 }\n');
    const sub = await cli(['submit', file, '--json'], env);
    assert.equal(sub.code, 0, sub.stderr);
    const { id } = JSON.parse(sub.stdout) as { id: string };
    const state = async () => JSON.parse((await cli(['status', id, '--json'], env)).stdout) as { status: string; counts: { queued: number; running: number; cancelled: number } };

    const paused = await cli(['pause', id, '--json'], env);
    assert.equal(paused.code, 0, paused.stderr);
    assert.equal((JSON.parse(paused.stdout) as { status: string }).status, 'paused');
    // While paused nothing new is dispatched: what runs drains, the queue stays.
    await waitFor('running jobs to drain', async () => (await state()).counts.running === 0, 60_000, 300);
    const before = await state();
    await new Promise((r) => setTimeout(r, 1_000));
    const later = await state();
    assert.equal(later.status, 'paused');
    assert.equal(later.counts.queued, before.counts.queued);
    assert.ok(later.counts.queued > 0);

    const resumed = await cli(['resume', id, '--json'], env);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match((JSON.parse(resumed.stdout) as { status: string }).status, /^(running|queued)$/);
    await waitFor('work to restart', async () => (await state()).counts.queued < later.counts.queued, 30_000, 200);

    const cancelled = await cli(['cancel', id, '--json'], env);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    const end = await state();
    assert.equal(end.status, 'cancelled');
    assert.equal(end.counts.queued + end.counts.running, 0);
    assert.ok(end.counts.cancelled > 0);
    const again = await cli(['pause', id], env);
    assert.notEqual(again.code, 0, 'a cancelled sweep cannot be paused');
  });
});

/**
 * The exec backend against real child processes: the example Node generator
 * (examples/generators/node-generator.mjs) and a few inline scripts.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { processAlive as alive, sleep } from '@nightshift/common';
import { RenderFailure, type RenderProgress, type RenderRequest } from './backend.js';
import { ExecBackend, parseProtocolLine, substitute, vramFromTable, type GeneratorInput } from './exec.js';

const GENERATOR = fileURLToPath(new URL('../../../../examples/generators/node-generator.mjs', import.meta.url));
const NODE = process.execPath;

let work: string;

function gen(extra: string[] = [], over: Partial<GeneratorInput> = {}): GeneratorInput {
  return {
    name: 'example',
    command: [NODE, GENERATOR, '--prompt={prompt}', '--seed={seed}', '--width={width}', '--height={height}', '--steps={steps}', '--output={output}', '--preview={preview}', ...extra],
    timeoutMs: 20_000,
    killGraceMs: 300,
    ...over,
  };
}

function req(over: Partial<RenderRequest> = {}): RenderRequest {
  return { jobId: 'job-1', renderKey: 'rk', kind: 'render', prompt: 'a red circle', seed: 7, params: { width: 64, height: 48, steps: 6, guidance: 7.5 }, model: 'default', ...over };
}

async function render(backend: ExecBackend, r: RenderRequest = req(), signal = new AbortController().signal) {
  const progress: RenderProgress[] = [];
  const result = await backend.render(r, (p) => progress.push(p), signal);
  return { result, progress };
}

async function failure(p: Promise<unknown>): Promise<RenderFailure> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RenderFailure, `expected a RenderFailure, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the render to fail');
}

async function until(what: string, fn: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

before(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'nightshift-exec-test-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

describe('exec backend', { timeout: 60_000 }, () => {
  test('renders with the example generator: progress in order, WebP previews, the PNG, temp folder removed', async () => {
    const jobs = mkdtempSync(path.join(work, 'jobs-'));
    const backend = new ExecBackend([gen(['--previews=3'])], { tmpDir: jobs, previewIntervalMs: 0 });
    const { result, progress } = await render(backend);
    const steps = progress.filter((p) => !p.preview).map((p) => p.step);
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
    assert.ok(progress.every((p) => p.total === 6));
    const previews = progress.filter((p) => p.preview);
    assert.ok(previews.length >= 1, 'at least one preview');
    for (const p of previews) assert.equal((await sharp(p.preview!).metadata()).format, 'webp');
    const meta = await sharp(result.png).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 64, 48]);
    assert.equal(result.model, 'example');
    assert.deepEqual(readdirSync(jobs), [], 'per-job temp folder removed');
  });

  test('hostile prompts arrive verbatim as one argument and run nothing', async () => {
    const dir = mkdtempSync(path.join(work, 'hostile-'));
    const pwned = path.join(dir, 'pwned');
    const prompts = [
      '"; rm -rf ~; echo "',
      `$(touch ${pwned}-1)`,
      `\`touch ${pwned}-2\``,
      `'; touch ${pwned}-3; echo '`,
      `a | touch ${pwned}-4 && echo {seed} {output} %s \\n 🌙 ünïcode`,
      '--simulate=fail',
    ];
    // HOME is a scratch folder with a canary: even a broken backend could not reach the real one.
    const home = path.join(dir, 'home');
    mkdirSync(home);
    writeFileSync(path.join(home, 'canary'), 'still here');
    const backend = new ExecBackend([gen([`--write-prompt=${path.join(dir, 'prompt.txt')}`])], { tmpDir: work, baseEnv: { ...process.env, HOME: home } });
    for (const prompt of prompts) {
      await render(backend, req({ prompt }));
      assert.equal(readFileSync(path.join(dir, 'prompt.txt'), 'utf8'), prompt);
    }
    for (let i = 1; i <= 4; i++) assert.equal(existsSync(`${pwned}-${i}`), false, `pwned-${i} must not exist`);
    assert.equal(readFileSync(path.join(home, 'canary'), 'utf8'), 'still here');
  });

  test('placeholders are substituted once, inside arguments, never re-scanned', () => {
    const values = { prompt: '{output} $(x)', seed: '1', width: '2', height: '3', steps: '4', guidance: '', output: '/o.png', preview: '/p.png', params: '/j.json', model: 'm', model_path: '/models/{prompt}' };
    assert.equal(substitute('--prompt={prompt}', values), '--prompt={output} $(x)');
    assert.equal(substitute('--ckpt={model_path}', values), '--ckpt=/models/{prompt}');
    assert.equal(substitute('{width}x{height}', values), '2x3');
    assert.equal(substitute('{unknown}', values), '{unknown}');
    assert.throws(() => new ExecBackend([gen(['{typo}'])]), /unknown placeholder \{typo\}/);
  });

  test('a non-zero exit fails with the log tail (protocol lines and \\r redraws left out)', async () => {
    const backend = new ExecBackend([gen(['--simulate=fail'])], { tmpDir: work });
    const err = await failure(render(backend));
    assert.match(err.message, /exited with code 3/);
    assert.equal(err.outOfMemory, false);
    assert.match(err.logTail, /RuntimeError: simulated generator failure/);
    assert.match(err.logTail, /node-generator: prompt="a red circle"/);
    assert.doesNotMatch(err.logTail, /"step"/);
    assert.match(err.logTail, /^sampling 1\/6$/m);
  });

  test('"CUDA out of memory" in the output marks the failure as OOM', async () => {
    const backend = new ExecBackend([gen(['--simulate=oom'])], { tmpDir: work });
    const err = await failure(render(backend));
    assert.equal(err.outOfMemory, true);
    assert.match(err.message, /CUDA out of memory/);
    assert.match(err.logTail, /torch\.cuda\.OutOfMemoryError/);
  });

  test('exit 0 without an output image is a failure', async () => {
    const backend = new ExecBackend([gen(['--simulate=no-output'])], { tmpDir: work });
    const err = await failure(render(backend));
    assert.match(err.message, /wrote no output image/);
    assert.match(err.logTail, /exiting without an output/);
  });

  test('an output or preview announced outside the job folder fails the job, symlinks followed', async () => {
    const secret = path.join(work, 'node-secret.png');
    await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } }).png().toFile(secret);
    const script = (body: string) => ({ name: 'sly', command: [NODE, '-e', `const fs = require('fs'), path = require('path'); const out = process.argv[1]; ${body}`, '{output}'], timeoutMs: 20_000, killGraceMs: 300 });
    const say = (o: object) => `console.log(JSON.stringify(${JSON.stringify(o)}))`;
    const absolute = await failure(render(new ExecBackend([script(say({ output: secret }))], { tmpDir: work })));
    assert.match(absolute.message, /announced its output at .*node-secret\.png, which is outside the job's folder/);
    const dotdot = await failure(render(new ExecBackend([script(`console.log(JSON.stringify({ output: path.relative(process.cwd(), ${JSON.stringify(secret)}) }))`)], { tmpDir: work })));
    assert.match(dotdot.message, /outside the job's folder/);
    const link = `const l = path.join(path.dirname(out), 'innocent.png'); fs.symlinkSync(${JSON.stringify(secret)}, l); console.log(JSON.stringify({ output: l }))`;
    assert.match((await failure(render(new ExecBackend([script(link)], { tmpDir: work })))).message, /outside the job's folder/, 'a symlink inside the folder to a file outside');
    const preview = `${say({ preview: secret })}; fs.copyFileSync(${JSON.stringify(secret)}, out)`;
    assert.match((await failure(render(new ExecBackend([script(preview)], { tmpDir: work })))).message, /announced its preview at .*, which is outside/);
    // The same generator writing inside its folder renders.
    const fine = await render(new ExecBackend([script(`fs.copyFileSync(${JSON.stringify(secret)}, out); ${say({ step: 1, total: 1 })}`)], { tmpDir: work }));
    assert.ok(fine.result.png.length > 0);
  });

  test('user: the generator runs as another user and cannot read the node\'s environment', { skip: process.getuid?.() !== 0 ? 'needs root to switch users' : false }, async () => {
    const shared = mkdtempSync(path.join(os.tmpdir(), 'nightshift-exec-user-'));
    try {
      // The job folders' parent must be reachable by that user; the job folder itself is handed over.
      chmodSync(shared, 0o711);
      const body = [
        `const fs = require('fs'); const out = process.argv[1];`,
        `let environ = 'readable';`,
        `try { fs.readFileSync('/proc/' + process.ppid + '/environ'); } catch (e) { environ = e.code; }`,
        `fs.writeFileSync(out, fs.readFileSync(${JSON.stringify(path.join(work, 'node-secret.png'))}.replace('node-secret', 'probe')));`,
        `console.log('uid=' + process.getuid() + ' environ=' + environ);`,
        `process.exit(3);`,
      ].join(' ');
      await sharp({ create: { width: 8, height: 8, channels: 3, background: 'blue' } }).png().toFile(path.join(work, 'probe.png'));
      chmodSync(work, 0o711);
      chmodSync(path.join(work, 'probe.png'), 0o644);
      const backend = new ExecBackend([{ name: 'confined', user: 'nobody', command: [NODE, '-e', body, '{output}'], timeoutMs: 20_000, killGraceMs: 300 }], { tmpDir: shared });
      const err = await failure(render(backend));
      // Exit 3 carries what it saw out through the log.
      assert.match(err.logTail, /uid=65534 environ=EACCES/);
      const missing = new ExecBackend([{ name: 'ghost', user: 'no-such-user-here', command: [NODE, '-e', ''], timeoutMs: 20_000, killGraceMs: 300 }], { tmpDir: shared });
      assert.match((await failure(render(missing))).message, /run as user "no-such-user-here", which does not exist/);
    } finally {
      rmSync(shared, { recursive: true, force: true });
    }
  });

  test('a generator that hangs is stopped at its timeout', async () => {
    const backend = new ExecBackend([gen(['--simulate=hang'], { timeoutMs: 400 })], { tmpDir: work });
    const started = Date.now();
    const err = await failure(render(backend));
    assert.match(err.message, /timed out after 400 ms/);
    assert.match(err.logTail, /hanging/);
    assert.ok(Date.now() - started < 5_000);
  });

  test('cancel kills the whole process group, SIGKILL after the grace period when SIGTERM is ignored', async () => {
    const pids = mkdtempSync(path.join(work, 'pids-'));
    const backend = new ExecBackend([gen([`--spawn-child=${pids}`, '--ignore-term', '--simulate=hang'], { killGraceMs: 300 })], { tmpDir: work });
    const ac = new AbortController();
    const p = render(backend, req(), ac.signal).then(
      () => assert.fail('should not complete'),
      (e: unknown) => e,
    );
    await until('pid files', () => existsSync(path.join(pids, 'child.pid')) && existsSync(path.join(pids, 'generator.pid')));
    const genPid = Number(readFileSync(path.join(pids, 'generator.pid'), 'utf8'));
    const childPid = Number(readFileSync(path.join(pids, 'child.pid'), 'utf8'));
    assert.ok(alive(genPid) && alive(childPid));
    const t0 = Date.now();
    ac.abort(new Error('cancelled by test'));
    const err = await p;
    assert.ok(err instanceof Error && !(err instanceof RenderFailure), 'a cancel is not reported as a render failure');
    assert.ok(Date.now() - t0 >= 250, 'SIGTERM was ignored, so the group needed the SIGKILL after the grace period');
    assert.equal(alive(genPid), false, 'generator gone');
    assert.equal(alive(childPid), false, 'its child gone (no orphan)');
  });

  test('processes a generator leaves behind after a normal exit are stopped', async () => {
    const pids = mkdtempSync(path.join(work, 'pids-'));
    const backend = new ExecBackend([gen([`--spawn-child=${pids}`])], { tmpDir: work });
    await render(backend);
    const childPid = Number(readFileSync(path.join(pids, 'child.pid'), 'utf8'));
    assert.equal(alive(childPid), false);
  });

  test('close() stops running generators', async () => {
    const pids = mkdtempSync(path.join(work, 'pids-'));
    const backend = new ExecBackend([gen([`--spawn-child=${pids}`, '--simulate=hang'])], { tmpDir: work });
    const p = render(backend).catch((e: unknown) => e);
    await until('pid files', () => existsSync(path.join(pids, 'child.pid')));
    await backend.close();
    const err = await p;
    assert.ok(err instanceof Error);
    assert.equal(alive(Number(readFileSync(path.join(pids, 'child.pid'), 'utf8'))), false);
  });

  test('the log tail keeps the last lines only', async () => {
    // exitCode, not exit(): many small writes to a pipe can still be queued when the script ends.
    const script = "for (let i = 1; i <= 1000; i++) console.log('line ' + i); process.exitCode = 1";
    const backend = new ExecBackend([{ name: 'noisy', command: [NODE, '-e', script] }], { tmpDir: work, logLines: 50 });
    const err = await failure(render(backend));
    const lines = err.logTail.split('\n');
    assert.equal(lines.length, 50);
    assert.equal(lines[0], 'line 951');
    assert.equal(lines.at(-1), 'line 1000');
  });

  test('the generator sees the params file and its env, but not the node’s NIGHTSHIFT_* settings', async () => {
    const script = [
      "const fs = require('node:fs');",
      "const doc = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));",
      "console.error('params ' + JSON.stringify(doc.params) + ' prompt ' + doc.prompt + ' model ' + doc.model);",
      "console.error('token ' + (process.env.NIGHTSHIFT_NODE_TOKEN ?? 'absent') + ' mine ' + process.env.MY_SETTING + ' cwd ' + process.cwd());",
      'process.exitCode = 5;',
    ].join('\n');
    const backend = new ExecBackend([{ name: 'env', command: [NODE, '-e', script, '{params}'], env: { MY_SETTING: 'yes' }, cwd: work, models: ['sd15', 'sdxl'] }], {
      tmpDir: work,
      baseEnv: { ...process.env, NIGHTSHIFT_NODE_TOKEN: 'secret-token' },
    });
    const err = await failure(render(backend, req({ model: 'sdxl', params: { width: 64, height: 64, steps: 2, sampler: 'euler' } })));
    assert.match(err.logTail, /params \{"width":64,"height":64,"steps":2,"sampler":"euler"\} prompt a red circle model sdxl/);
    assert.match(err.logTail, new RegExp(`token absent mine yes cwd ${work.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  test('job.model picks the generator: default → first, a generator name, or a model it lists', () => {
    const backend = new ExecBackend([gen([], { name: 'a', models: [] }), gen([], { name: 'b', models: ['sd15', 'sdxl'], vramMb: { '512x512': 10240, '1024x1024': 16384, default: 6144 } })]);
    assert.deepEqual(backend.models, ['a', 'b', 'sd15', 'sdxl']);
    assert.deepEqual([backend.resolve('default').gen.name, backend.resolve('default').model], ['a', 'a']);
    assert.deepEqual([backend.resolve('b').gen.name, backend.resolve('b').model], ['b', 'sd15']);
    assert.deepEqual([backend.resolve('sdxl').gen.name, backend.resolve('sdxl').model], ['b', 'sdxl']);
    assert.throws(() => backend.resolve('nope'), (e: unknown) => e instanceof RenderFailure && /no exec generator .* "nope"/.test(e.message));
    assert.equal(vramFromTable(backend.resolve('sdxl').gen.vramMb, 512, 512), 10240, "the model's generator brings its VRAM table");
    assert.equal(backend.resolve('default').gen.vramMb, undefined, 'generator a has no table');
    assert.throws(() => new ExecBackend([gen(), gen()]), /defined twice/);
  });

  test('VRAM table: exact size, else the smallest listed size that covers it, else default', () => {
    const t = { '512x512': 10240, '768x768': 12288, default: 6144 };
    assert.equal(vramFromTable(t, 512, 512), 10240);
    assert.equal(vramFromTable(t, 256, 256), 10240);
    assert.equal(vramFromTable(t, 640, 512), 12288);
    assert.equal(vramFromTable(t, 1024, 1024), 6144);
    assert.equal(vramFromTable({ '512x512': 1 }, 1024, 64), undefined);
    assert.equal(vramFromTable(undefined, 64, 64), undefined);
  });

  test('a program that does not exist fails clearly', async () => {
    const backend = new ExecBackend([{ name: 'missing', command: [path.join(work, 'no-such-program')] }], { tmpDir: work });
    const err = await failure(render(backend));
    assert.match(err.message, /could not start generator "missing".*ENOENT/);
  });

  test('a NUL in the prompt fails clearly (no program can receive it)', async () => {
    const backend = new ExecBackend([gen()], { tmpDir: work });
    const err = await failure(render(backend, req({ prompt: 'a\0b' })));
    assert.match(err.message, /NUL character/);
  });

  test('an already cancelled job starts nothing', async () => {
    const pids = mkdtempSync(path.join(work, 'pids-'));
    const backend = new ExecBackend([gen([`--spawn-child=${pids}`])], { tmpDir: work });
    const ac = new AbortController();
    ac.abort(new Error('cancelled early'));
    await assert.rejects(render(backend, req(), ac.signal), /cancelled early/);
    assert.deepEqual(readdirSync(pids), []);
  });

  test('upscale jobs are refused', async () => {
    const backend = new ExecBackend([gen()], { tmpDir: work });
    await failure(render(backend, req({ kind: 'upscale' })));
  });

  test('protocol lines: only well-formed objects with known fields count', () => {
    assert.deepEqual(parseProtocolLine('{"step":3,"total":50}'), { step: 3, total: 50 });
    assert.deepEqual(parseProtocolLine('  {"preview":"/p.png"} '), { preview: '/p.png' });
    assert.deepEqual(parseProtocolLine('{"output":"o.png","extra":1}'), { output: 'o.png' });
    assert.equal(parseProtocolLine('{"loss": 0.3}'), undefined);
    assert.equal(parseProtocolLine('{not json}'), undefined);
    assert.equal(parseProtocolLine('step 3/50'), undefined);
    assert.equal(parseProtocolLine('[1,2]'), undefined);
  });
});

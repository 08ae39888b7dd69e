/**
 * Registry models pulled by the node's worker, against a real s3rver and a
 * real exec generator that renders from `{model_path}`: one download for
 * concurrent jobs, a flipped byte re-fetched, S3 stopped mid-download,
 * a model that cannot be had (model_unavailable), and a cache cap smaller
 * than two models.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import sharp from 'sharp';
import { create } from '@bufbuild/protobuf';
import { createLogger, sleep, Storage } from '@nightshift/common';
import { startS3Server, tempDir, type S3Server } from '@nightshift/devfarm';
import { JobAssignmentSchema } from '@nightshift/proto';
import { addModel, type CacheEvent, type ModelManifest } from '@nightshift/registry';
import { ExecBackend } from './backends/exec.js';
import { NodeModels } from './model-pull.js';
import { Worker, type Report } from './worker.js';

const log = createLogger('model-pull-test', (process.env.TEST_LOG ?? 'silent') as 'silent');
let tmp: ReturnType<typeof tempDir>;
let s3: S3Server;
let storage: Storage;
/** Model file downloads (object keys). */
const gets: string[] = [];
/** A gate on model file bytes: once `after` bytes have passed, the rest waits for `open`, so a test can act mid-download. */
const gate: { after: number; open?: Promise<void>; reached: boolean } = { after: 0, reached: false };
let holdDir: string;
let generator: string;

/** Waits for a condition the system under test brings about (polled; never a fixed sleep). */
async function until(what: string, fn: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * The generator: reads name.txt from {model_path}, notes that it started,
 * waits for its go-file (HOLD_DIR/go-NAME), then outputs the model's own
 * image.png, so the rendered pixels say which model's files it read.
 */
const GENERATOR = `
import { appendFileSync, copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
const [modelPath, output] = process.argv.slice(2);
const hold = process.env.HOLD_DIR;
const name = readFileSync(join(modelPath, 'name.txt'), 'utf8').trim();
appendFileSync(join(hold, 'started'), name + '\\n');
while (!existsSync(join(hold, 'go-' + name))) await new Promise((r) => setTimeout(r, 10));
copyFileSync(join(modelPath, 'image.png'), output);
`;

const started = () => (existsSync(path.join(holdDir, 'started')) ? readFileSync(path.join(holdDir, 'started'), 'utf8').split('\n').filter(Boolean) : []);
const go = (name: string) => writeFileSync(path.join(holdDir, `go-${name}`), '');

interface TestModel {
  name: string;
  manifest: ModelManifest;
  rgb: [number, number, number];
}

async function registerModel(name: string, weightBytes: number, rgb: [number, number, number]): Promise<TestModel> {
  const dir = path.join(tmp.dir, 'src', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'name.txt'), name);
  writeFileSync(path.join(dir, 'weights.bin'), createHash('sha256').update(name).digest().toString('hex').repeat(Math.ceil(weightBytes / 64)).slice(0, weightBytes));
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toFile(path.join(dir, 'image.png'));
  const { manifest } = await addModel(storage, name, 'generator-asset', dir);
  return { name, manifest, rgb };
}

interface Rig {
  worker: Worker;
  models: NodeModels;
  reports: Report[];
  stop(): Promise<void>;
}

function rig(name: string, opts: { capBytes?: number; slots?: number; attempts?: number; retryDelayMs?: number; storage?: Pick<Storage, 'client' | 'bucket'>; onCacheEvent?: (e: CacheEvent) => void } = {}): Rig {
  const models = new NodeModels({
    settings: { dir: path.join(tmp.dir, 'caches', name), capBytes: opts.capBytes ?? 1e9, attempts: opts.attempts ?? 3, retryDelayMs: opts.retryDelayMs ?? 20 },
    storage: opts.storage ?? storage,
    log,
    // The test models are tiny: let them count towards the advertised rate.
    rateMinBytes: 0,
    ...(opts.onCacheEvent ? { onCacheEvent: opts.onCacheEvent } : {}),
  });
  const exec = new ExecBackend([{ name: 'from-model', command: [process.execPath, generator, '{model_path}', '{output}'], env: { HOLD_DIR: holdDir }, timeoutMs: 60_000, killGraceMs: 200 }], { tmpDir: path.join(tmp.dir, 'jobs') });
  const reports: Report[] = [];
  const worker = new Worker({ nodeId: name, slots: opts.slots ?? 2, backends: new Map([['exec', exec]]), storage, report: (r) => reports.push(r), log, models });
  worker.start();
  return {
    worker,
    models,
    reports,
    async stop() {
      await worker.stop();
      await exec.close();
    },
  };
}

let jobs = 0;
function assign(r: Rig, m: { name: string; manifest: { hash: string } }): string {
  const jobId = `job-${++jobs}`;
  const renderKey = createHash('sha256').update(jobId).digest('hex');
  r.worker.assign(create(JobAssignmentSchema, { jobId, renderKey, backend: 'exec', model: m.name, modelHash: m.manifest.hash, prompt: 'x', seed: 1n, paramsJson: JSON.stringify({ width: 8, height: 8, steps: 1 }) }));
  return jobId;
}

const outcome = (r: Rig, jobId: string) => r.reports.find((x) => (x.case === 'completed' || x.case === 'failed') && x.value.jobId === jobId);

async function completed(r: Rig, jobId: string): Promise<Extract<Report, { case: 'completed' }>['value']> {
  await until(`${jobId} to finish`, () => outcome(r, jobId) !== undefined);
  const o = outcome(r, jobId)!;
  if (o.case !== 'completed') assert.fail(`${jobId} failed: ${o.case === 'failed' ? o.value.error : ''}`);
  return o.value;
}

/** The rendered image's pixel colour: which model's image.png the generator read. */
async function colourOf(imageKey: string): Promise<number[]> {
  const { data } = await sharp(await storage.get(imageKey)).raw().toBuffer({ resolveWithObject: true });
  return [data[0]!, data[1]!, data[2]!];
}

const getsOf = (m: TestModel) => gets.filter((k) => k.includes(m.manifest.hash)).length;

/** Flips a byte; `keepMtime` sets the mtime back to the nanosecond (touch; Node's utimes rounds it), so only the ctime shows the write. */
function flipByte(file: string, keepMtime: boolean): void {
  const ns = statSync(file, { bigint: true }).mtimeNs;
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from([readFileSync(file)[3]! ^ 0xff]), 0, 1, 3);
  closeSync(fd);
  if (!keepMtime) return;
  execFileSync('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, file]);
  assert.equal(statSync(file, { bigint: true }).mtimeNs, ns, 'the mtime is set back exactly');
}

describe('registry models pulled by the worker', { timeout: 180_000 }, () => {
  let a: TestModel;
  let b: TestModel;

  before(async () => {
    tmp = tempDir('nightshift-model-pull-');
    s3 = await startS3Server(path.join(tmp.dir, 's3'));
    storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
    const client = storage.client;
    const get = client.getObject.bind(client);
    // Counts model file downloads and can slow them (the bytes still come from the real server).
    client.getObject = (async (bucket: string, key: string, ...rest: unknown[]) => {
      const body: Readable = await (get as (...a: unknown[]) => Promise<Readable>)(bucket, key, ...rest);
      if (!key.includes('/files/')) return body;
      gets.push(key);
      if (!gate.open) return body;
      let passed = 0;
      const gated = new Transform({
        transform: (chunk: Buffer, _e, done) => {
          passed += chunk.length;
          if (!gate.open || passed <= gate.after) return done(null, chunk);
          gate.reached = true;
          void gate.open.then(() => done(null, chunk));
        },
      });
      // pipeline carries a cut connection's error on to the reader.
      pipeline(body, gated).catch(() => undefined);
      return gated;
    }) as typeof client.getObject;
    holdDir = path.join(tmp.dir, 'hold');
    mkdirSync(holdDir);
    mkdirSync(path.join(tmp.dir, 'jobs'));
    generator = path.join(tmp.dir, 'generator.mjs');
    writeFileSync(generator, GENERATOR);
    a = await registerModel('model-a', 100_000, [200, 30, 30]);
    b = await registerModel('model-b', 100_000, [30, 200, 30]);
  });
  after(async () => {
    await s3?.stop();
    tmp?.cleanup();
  });

  test('two jobs on one model: one download, both render from the pulled folder, the node advertises it', async () => {
    const r = rig('flight');
    try {
      gets.length = 0;
      const [j1, j2] = [assign(r, a), assign(r, a)];
      await until('both generators to start', () => started().filter((n) => n === a.name).length === 2);
      assert.equal(getsOf(a), a.manifest.files.length, 'each file downloaded once for both jobs');
      const state = r.models.state();
      assert.deepEqual(state.cachedHashes, [a.manifest.hash]);
      assert.equal(state.loadedHash, a.manifest.hash);
      assert.deepEqual(state.downloads, []);
      assert.ok((state.downloadBytesPerS ?? 0) > 0, 'the download rate is measured');
      go(a.name);
      for (const j of [j1, j2]) assert.deepEqual(await colourOf((await completed(r, j)).imageKey), a.rgb);
    } finally {
      await r.stop();
    }
  });

  test('a flipped byte: caught on the next job when the write shows, and on the next job too when it hides its mtime', async () => {
    go(a.name);
    go(b.name);
    const r = rig('corrupt');
    try {
      await completed(r, assign(r, a));
      const weights = path.join(tmp.dir, 'caches', 'corrupt', a.manifest.hash, 'weights.bin');
      const good = readFileSync(weights);

      flipByte(weights, false);
      gets.length = 0;
      assert.deepEqual(await colourOf((await completed(r, assign(r, a))).imageKey), a.rgb);
      assert.equal(getsOf(a), a.manifest.files.length, 'fetched again');
      assert.deepEqual(readFileSync(weights), good);

      // The same size and mtime (to the nanosecond): the write still moved the file's ctime, so the
      // next job finds it, on the same model (no load in between) …
      flipByte(weights, true);
      gets.length = 0;
      assert.deepEqual(await colourOf((await completed(r, assign(r, a))).imageKey), a.rgb);
      assert.equal(getsOf(a), a.manifest.files.length, 'fetched again with the mtime hidden');
      assert.deepEqual(readFileSync(weights), good);
      // … and at a load, after another model.
      flipByte(weights, true);
      gets.length = 0;
      await completed(r, assign(r, b));
      await completed(r, assign(r, a));
      assert.equal(getsOf(a), a.manifest.files.length, 'fetched again at the load');
      assert.deepEqual(readFileSync(weights), good);
    } finally {
      await r.stop();
    }
  });

  test('a node switching back and forth between two cached models re-hashes none of their bytes', async () => {
    go(a.name);
    go(b.name);
    const events: CacheEvent[] = [];
    const r = rig('switch', { slots: 1, onCacheEvent: (e) => events.push(e) });
    try {
      // Both pulled, then one round of switches (a kernel with coarse timestamps hashes a just-written file once more).
      for (const m of [a, b, a, b]) await completed(r, assign(r, m));
      assert.deepEqual(events.filter((e) => e.type === 'downloaded').map((e) => e.hash), [a.manifest.hash, b.manifest.hash]);
      events.length = 0;
      gets.length = 0;
      for (let i = 0; i < 12; i++) {
        const m = i % 2 ? b : a;
        assert.deepEqual(await colourOf((await completed(r, assign(r, m))).imageKey), m.rgb);
        assert.equal(r.models.state().loadedHash, m.manifest.hash, 'the node switched model');
      }
      assert.deepEqual([...events], [], 'twelve switches: no byte re-hashed, nothing fetched or evicted');
      assert.equal(gets.length, 0);
    } finally {
      await r.stop();
    }
  });

  test('S3 stopped mid-download: retried, and the generator runs once, from the whole model', async () => {
    // Larger than what loopback socket buffers hold, so killing the server leaves the response unfinished.
    const big = await registerModel('model-big', 24 * 1024 * 1024, [30, 30, 200]);
    go(big.name);
    const r = rig('outage', { attempts: 6, retryDelayMs: 300 });
    let open = () => {};
    let down = false;
    try {
      Object.assign(gate, { after: 1024 * 1024, reached: false, open: new Promise<void>((resolve) => (open = resolve)) });
      const job = assign(r, big);
      await until('the download to be under way', () => gate.reached);
      const during = r.models.state();
      assert.equal(during.downloads?.[0]?.hash, big.manifest.hash);
      assert.equal(during.downloads?.[0]?.name, big.name);
      assert.equal(during.downloads?.[0]?.bytesTotal, BigInt(big.manifest.totalSize));
      // Partway: the bytes before the gate have arrived (the chunk that crossed it is held back).
      await until('the bytes before the gate to arrive', () => (r.models.state().downloads?.[0]?.bytesDone ?? 0n) > 0n);
      assert.ok((r.models.state().downloads?.[0]?.bytesDone ?? 0n) < BigInt(big.manifest.totalSize));
      // The server goes away with the response half sent (it cannot finish it: the reader is held).
      try {
        down = true;
        await s3.stop();
      } finally {
        delete gate.open;
        open();
      }
      await until('the cut attempt to be cleared away', () => r.models.state().downloads?.[0]?.bytesDone === 0n);
      assert.deepEqual(r.models.state().cachedHashes, [], 'nothing cached from a cut download');
      assert.ok(!started().includes(big.name), 'the generator has not run');
      await s3.start();
      down = false;
      const done = await completed(r, job);
      assert.deepEqual(await colourOf(done.imageKey), big.rgb);
      assert.equal(started().filter((n) => n === big.name).length, 1, 'rendered once');
      assert.deepEqual(r.models.state().cachedHashes, [big.manifest.hash]);
      assert.ok(getsOf(big) > big.manifest.files.length, 'downloaded again after the cut');
    } finally {
      delete gate.open;
      open();
      if (down) await s3.start();
      await r.stop();
    }
  });

  test('a job cancelled while its model downloads: no report, the download finishes for the next job, nothing left held', async () => {
    const slow = await registerModel('model-slow', 4 * 1024 * 1024, [120, 60, 0]);
    go(slow.name);
    const r = rig('cancel');
    let open = () => {};
    try {
      Object.assign(gate, { after: 1024 * 1024, reached: false, open: new Promise<void>((resolve) => (open = resolve)) });
      gets.length = 0;
      const first = assign(r, slow);
      await until('the download to be under way', () => gate.reached);
      r.worker.cancel(first);
      const second = assign(r, slow);
      delete gate.open;
      open();
      assert.deepEqual(await colourOf((await completed(r, second)).imageKey), slow.rgb);
      assert.equal(outcome(r, first), undefined, 'nothing reported for the cancelled job');
      assert.equal(getsOf(slow), slow.manifest.files.length, 'one download served both');
      await until('every hold released', () => r.models.cache.list().every((e) => !e.inUse));
    } finally {
      delete gate.open;
      open();
      await r.stop();
    }
  });

  test('a model that cannot be had fails the job with model_unavailable, naming the model and the cause', async () => {
    const r = rig('missing', { attempts: 2, retryDelayMs: 10 });
    const offline = rig('offline', { attempts: 2, retryDelayMs: 10, storage: new Storage({ endpoint: 'http://127.0.0.1:9', accessKey: 'x', secretKey: 'x', bucket: 'nightshift' }) });
    try {
      const gone = assign(r, { name: 'never-added', manifest: { hash: 'f'.repeat(64) } });
      await until('the job to fail', () => outcome(r, gone) !== undefined);
      const f1 = outcome(r, gone)!;
      assert.equal(f1.case, 'failed');
      if (f1.case === 'failed') {
        assert.equal(f1.value.modelUnavailable, true);
        assert.match(f1.value.error, /^model never-added \(ffffffffffff\) could not be fetched: .*not in the registry/);
      }
      const cut = assign(offline, a);
      await until('the job to fail', () => outcome(offline, cut) !== undefined);
      const f2 = outcome(offline, cut)!;
      assert.equal(f2.case, 'failed');
      if (f2.case === 'failed') {
        assert.equal(f2.value.modelUnavailable, true);
        assert.match(f2.value.error, /^model model-a \([0-9a-f]{12}\) could not be fetched: cannot read the manifest .* after 2 tries/);
      }
      assert.deepEqual(started().filter((n) => n === 'never-added'), []);
    } finally {
      await r.stop();
      await offline.stop();
    }
  });

  test('a cache cap smaller than two models: the one in use is never evicted, the least recently used goes', async () => {
    const c = await registerModel('model-c', 100_000, [90, 90, 90]);
    const d = await registerModel('model-d', 100_000, [10, 10, 10]);
    const size = c.manifest.totalSize;
    const r = rig('cap', { capBytes: Math.floor(1.5 * size) });
    try {
      const jc = assign(r, c);
      const jd = assign(r, d);
      await until('both generators to start', () => started().includes(c.name) && started().includes(d.name));
      // Both held by running jobs: over the cap for now, nothing evicted.
      assert.deepEqual([...(r.models.state().cachedHashes ?? [])].sort(), [c.manifest.hash, d.manifest.hash].sort());
      go(c.name);
      assert.deepEqual(await colourOf((await completed(r, jc)).imageKey), c.rgb);
      // model-c's job is over: it goes (model-d is still in use), and the cap holds again.
      await until('model-c to be evicted', () => r.models.state().cachedHashes?.join() === d.manifest.hash);
      assert.ok(!existsSync(path.join(tmp.dir, 'caches', 'cap', c.manifest.hash)));
      go(d.name);
      assert.deepEqual(await colourOf((await completed(r, jd)).imageKey), d.rgb, 'model-d rendered from its files, never evicted under it');
      // Now model-d is the least recently used and in no job's hands: model-c comes back in its place.
      gets.length = 0;
      await completed(r, assign(r, c));
      assert.deepEqual(r.models.state().cachedHashes, [c.manifest.hash]);
      assert.equal(getsOf(c), c.manifest.files.length);
      assert.ok(r.models.cache.usedBytes() <= Math.floor(1.5 * size));
    } finally {
      await r.stop();
    }
  });
});

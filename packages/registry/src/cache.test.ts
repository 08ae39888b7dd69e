import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, openSync, readdirSync, readFileSync, statSync, utimesSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { modelFileKey, modelManifestKey, Storage } from '@nightshift/common';
import { addModel, ModelCache, ModelFetchError, modelHash, RATE_MIN_BYTES, type CacheEvent, type ModelManifest, type TransferProgress } from './mod.js';
import { putJson } from './bucket.js';
import { isRacy, RACY_NS, type FileStamp } from './file-stamp.js';
import { flipByte, startTestBucket, writeModel, type TestBucket } from './test-helpers.js';

let b: TestBucket;
const models: ModelManifest[] = [];
const SIZE = 200_000;

before(async () => {
  b = await startTestBucket();
  for (let i = 0; i < 3; i++) {
    const dir = writeModel(join(b.dir, `m${i}`), { 'weights.bin': Buffer.alloc(SIZE - 10, i + 1), 'config/c.json': `{"i":${i}}`.padEnd(10) });
    models.push((await addModel(b.storage, `m${i}`, 'generator-asset', dir)).manifest);
  }
});
after(async () => {
  await b?.stop();
});

const fastRetry = { attempts: 3, retryDelayMs: 50 };
const cacheDir = (name: string) => join(b.dir, 'caches', name);
const flip = (path: string, keepMtime: boolean) => {
  const st = statSync(path);
  const fd = openSync(path, 'r+');
  const byte = readFileSync(path)[5]!;
  writeSync(fd, Buffer.from([byte ^ 0xff]), 0, 1, 5);
  closeSync(fd);
  if (keepMtime) utimesSync(path, st.atime, st.mtime);
};
const tmpLeft = (dir: string) => readdirSync(join(dir, '.tmp')).filter((n) => !n.startsWith('meta-'));

test('three concurrent ensures of one model: one download, one folder, every caller hears progress', async () => {
  const m = models[0]!;
  const cache = new ModelCache(cacheDir('flight'), 10 * SIZE, fastRetry);
  b.calls.gets.length = 0;
  const heard = [0, 0, 0];
  const paths = await Promise.all([0, 1, 2].map((i) => cache.ensure(m.hash, b.storage, () => heard[i]!++)));
  assert.equal(new Set(paths).size, 1);
  assert.equal(b.calls.gets.length, m.files.length, 'each file was downloaded once');
  assert.ok(heard.every((n) => n > 0), `progress reached every caller: ${heard.join(',')}`);
  assert.deepEqual(readFileSync(join(paths[0]!, 'config', 'c.json'), 'utf8'), '{"i":0}'.padEnd(10));
  b.calls.gets.length = 0;
  await cache.ensure(m.hash, b.storage);
  assert.equal(b.calls.gets.length, 0, 'a cached model is not downloaded again');
});

test('LRU eviction under the cap, never a model in use', async () => {
  const [m0, m1, m2] = models as [ModelManifest, ModelManifest, ModelManifest];
  const evicted: string[] = [];
  const cache = new ModelCache(cacheDir('lru'), Math.floor(2.5 * SIZE), { ...fastRetry, onEvent: (e) => e.type === 'evicted' && evicted.push(e.hash) });
  await cache.ensure(m0.hash, b.storage);
  await cache.ensure(m1.hash, b.storage);
  await cache.ensure(m0.hash, b.storage); // m0 used last: m1 is now the least recently used
  await cache.ensure(m2.hash, b.storage);
  assert.deepEqual(evicted, [m1.hash], 'the least recently used one goes');
  assert.ok(!existsSync(join(cacheDir('lru'), m1.hash)));

  // m0 is now the LRU, but in use: m2 goes instead when room is needed.
  const held = await cache.use(m0.hash, b.storage);
  await cache.ensure(m1.hash, b.storage);
  assert.deepEqual(evicted, [m1.hash, m2.hash]);
  assert.ok(existsSync(join(held.path, 'weights.bin')));

  // A cap smaller than two models: the one in use stays (the cap is exceeded for now) …
  let smallEvicted: (hash: string) => void = () => {};
  const evictedFromSmall = new Promise<string>((resolve) => (smallEvicted = resolve));
  const small = new ModelCache(cacheDir('small'), Math.floor(1.5 * SIZE), { ...fastRetry, onEvent: (e) => e.type === 'evicted' && smallEvicted(e.hash) });
  const inUse = await small.use(m0.hash, b.storage);
  await small.ensure(m1.hash, b.storage);
  assert.deepEqual(small.list().map((e) => e.hash).sort(), [m0.hash, m1.hash].sort());
  assert.ok(existsSync(join(inUse.path, 'weights.bin')), 'never evicted while in use');
  // … and once released the cap holds again: m0's use just ended, so m1 is the least recently used.
  inUse.release();
  assert.equal(await evictedFromSmall, m1.hash, 'the release makes room: the least recently used goes');
  assert.deepEqual(small.list().map((e) => e.hash), [m0.hash]);
  assert.ok(small.usedBytes() <= small.capBytes);
  held.release();
});

test('a flipped byte in a cached file is detected and the model fetched again', async () => {
  const m = models[1]!;
  const dir = cacheDir('corrupt');
  const events: string[] = [];
  const cache = new ModelCache(dir, 10 * SIZE, { ...fastRetry, onEvent: (e) => events.push(e.type) });
  const path = await cache.ensure(m.hash, b.storage);
  const file = join(path, 'weights.bin');
  const good = readFileSync(file);

  assert.deepEqual(events, ['downloaded']);
  flip(file, false); // the mtime changes: the next ensure re-hashes it
  b.calls.gets.length = 0;
  await cache.ensure(m.hash, b.storage);
  assert.deepEqual(events.splice(0), ['downloaded', 'corrupt', 'downloaded']);
  assert.equal(b.calls.gets.length, m.files.length);
  assert.deepEqual(readFileSync(file), good);

  // A write that sets the mtime back to the nanosecond still moves the ctime: caught by the next ordinary ensure.
  flipByte(file, 7, true);
  await cache.ensure(m.hash, b.storage);
  assert.deepEqual(events.splice(0), ['corrupt', 'downloaded']);
  assert.deepEqual(readFileSync(file), good);

  // A flip made while the node was down is caught by the first use after the restart (a full verify) …
  flip(file, true);
  const restarted = new ModelCache(dir, 10 * SIZE, { ...fastRetry, onEvent: (e) => events.push(e.type) });
  await restarted.ensure(m.hash, b.storage);
  assert.deepEqual(events.splice(0), ['corrupt', 'downloaded']);
  assert.deepEqual(readFileSync(file), good);
  // … and any time by a verify asked for.
  flip(file, true);
  await restarted.ensure(m.hash, b.storage, undefined, { verify: true });
  assert.deepEqual(events.splice(0), ['corrupt', 'downloaded']);
  assert.deepEqual(readFileSync(file), good);

  // Corrupt, and the bucket unreachable: the ensure fails and the bad copy is no longer listed as cached.
  flip(file, false);
  const offline = new Storage({ endpoint: 'http://127.0.0.1:9', accessKey: 'x', secretKey: 'x', bucket: 'nightshift' });
  await assert.rejects(restarted.ensure(m.hash, offline), ModelFetchError);
  assert.deepEqual(restarted.list(), []);
  assert.ok(!existsSync(path));
});

test('a corrupt object in the bucket: each attempt deleted, then a clear error; nothing installed', async () => {
  const dir = writeModel(join(b.dir, 'bad'), { 'w.bin': Buffer.alloc(5000, 9) });
  const m = (await addModel(b.storage, 'bad', 'generator-asset', dir)).manifest;
  await b.storage.client.putObject(b.storage.bucket, modelFileKey(m.hash, 'w.bin'), Buffer.alloc(5000, 8));
  const cdir = cacheDir('bad');
  const cache = new ModelCache(cdir, 10 * SIZE, fastRetry);
  b.calls.gets.length = 0;
  await assert.rejects(cache.ensure(m.hash, b.storage), (err: unknown) => err instanceof ModelFetchError && /after 3 tries: w\.bin: sha256 .* does not match/.test(err.message));
  assert.equal(b.calls.gets.length, 3);
  assert.ok(!existsSync(join(cdir, m.hash)));
  assert.deepEqual(tmpLeft(cdir), []);
  await assert.rejects(cache.ensure('f'.repeat(64), b.storage), /not in the registry/);
});

test('hashed on the worker thread or inline, a download is checked the same: a good one installed, a corrupt one refused', async () => {
  const dir = writeModel(join(b.dir, 'both-ways'), { 'w.bin': Buffer.alloc(3 * 1024 * 1024 + 3, 5), 'x.txt': 'x' });
  const m = (await addModel(b.storage, 'both-ways', 'generator-asset', dir)).manifest;
  for (const hashOffThread of [true, false]) {
    const cache = new ModelCache(cacheDir(`both-ways-${hashOffThread}`), 20 * 1024 * 1024, { ...fastRetry, attempts: 1, hashOffThread });
    const path = await cache.ensure(m.hash, b.storage);
    assert.deepEqual(readFileSync(join(path, 'w.bin')), Buffer.alloc(3 * 1024 * 1024 + 3, 5));
  }
  await b.storage.client.putObject(b.storage.bucket, modelFileKey(m.hash, 'w.bin'), Buffer.alloc(3 * 1024 * 1024 + 3, 6));
  for (const hashOffThread of [true, false]) {
    const cache = new ModelCache(cacheDir(`both-ways-bad-${hashOffThread}`), 20 * 1024 * 1024, { ...fastRetry, attempts: 1, hashOffThread });
    await assert.rejects(cache.ensure(m.hash, b.storage), /w\.bin: sha256 .* does not match/);
  }
});

test('a hostile manifest naming ../../x is refused before any download; an object longer than its manifest says is cut off', async () => {
  const cdir = cacheDir('hostile');
  const files = [{ path: '../../escaped.bin', size: 4, sha256: 'b'.repeat(64) }];
  const hash = modelHash(files);
  await putJson(b.storage, modelManifestKey(hash), { hash, name: 'hostile', kind: 'generator-asset', files, totalSize: 4, addedAt: new Date().toISOString() });
  const cache = new ModelCache(cdir, 10 * SIZE, fastRetry);
  b.calls.gets.length = 0;
  b.calls.manifests.length = 0;
  await assert.rejects(cache.ensure(hash, b.storage), (err: unknown) => err instanceof ModelFetchError && /is refused: invalid model manifest: files\.0\.path: refusing model file path "\.\.\/\.\.\/escaped\.bin"/.test(err.message));
  assert.deepEqual(b.calls.gets, [], 'no file of it was fetched');
  assert.equal(b.calls.manifests.length, 1, 'an invalid manifest is final: not read again');
  assert.ok(!existsSync(join(cdir, '..', '..', 'escaped.bin')) && !existsSync(join(cdir, '..', 'escaped.bin')));
  assert.deepEqual(cache.list(), []);

  // The bucket's object is longer than the manifest's size: the download stops there, nothing is installed.
  const dir = writeModel(join(b.dir, 'long'), { 'w.bin': Buffer.alloc(5000, 4) });
  const m = (await addModel(b.storage, 'long', 'generator-asset', dir)).manifest;
  await b.storage.client.putObject(b.storage.bucket, modelFileKey(m.hash, 'w.bin'), Buffer.alloc(3 * 1024 * 1024, 4));
  await assert.rejects(cache.ensure(m.hash, b.storage), (err: unknown) => err instanceof ModelFetchError && /w\.bin: more than the 5000 bytes the manifest says/.test(err.message));
  assert.ok(!existsSync(join(cdir, m.hash)));
  assert.deepEqual(tmpLeft(cdir), []);
});

test('S3 stopped mid-download: retried, nothing left half-written', async () => {
  const big = 16 * 1024 * 1024;
  const dir = writeModel(join(b.dir, 'big'), { 'big.bin': Buffer.alloc(big, 3), 'small.txt': 'x' });
  const m = (await addModel(b.storage, 'big', 'diffusion', dir)).manifest;
  const cdir = cacheDir('outage');
  const cache = new ModelCache(cdir, 2 * big, { attempts: 6, retryDelayMs: 300 });
  let outage: Promise<void> | undefined;
  // Slow enough that the stop (SIGTERM, then SIGKILL after s3rver's 5 s of grace) lands mid-download.
  b.throttle.msPerChunk = 40;
  let sawFolderDuringOutage = false;
  const progress: TransferProgress[] = [];
  const path = await cache.ensure(m.hash, b.storage, (p) => {
    progress.push(p);
    if (!outage && p.phase === 'download' && p.bytesDone > 1024 * 1024) {
      outage = (async () => {
        await b.s3.stop();
        b.throttle.msPerChunk = 0;
        sawFolderDuringOutage = existsSync(join(cdir, m.hash));
        await new Promise((r) => setTimeout(r, 500));
        await b.s3.start();
      })();
    }
  });
  await outage;
  assert.ok(outage, 'the outage happened during the download');
  assert.equal(sawFolderDuringOutage, false, 'no model folder while the download was cut off');
  assert.equal(statSync(join(path, 'big.bin')).size, big);
  assert.ok(progress.some((p, i) => i > 0 && p.bytesDone < progress[i - 1]!.bytesDone), 'a second attempt started from zero');
  assert.deepEqual(tmpLeft(cdir), []);
  assert.equal(cache.list().length, 1);
});

test('a download that stalls is cut and retried; when every try stalls the error says so', async () => {
  const m = models[2]!;
  const cdir = cacheDir('stall');
  b.throttle.msPerChunk = 400;
  try {
    const cache = new ModelCache(cdir, 10 * SIZE, { attempts: 2, retryDelayMs: 10, stallMs: 150 });
    await assert.rejects(cache.ensure(m.hash, b.storage), /after 2 tries: .*no data for 0\.15 s/);
    assert.deepEqual(tmpLeft(cdir), []);
  } finally {
    b.throttle.msPerChunk = 0;
  }
});

test('what a node advertises: downloads in progress with bytes done/total, then the measured rate', async () => {
  const m = models[0]!;
  // Every download counts here (the models are small); the next test covers the size threshold.
  const cache = new ModelCache(cacheDir('advertise'), 10 * SIZE, { ...fastRetry, rateMinBytes: 0 });
  assert.equal(cache.downloadBytesPerSecond(), 0, 'unmeasured before any download');
  const seen: ReturnType<ModelCache['downloads']>[] = [];
  const downloaded: number[] = [];
  const cache2 = new ModelCache(cacheDir('advertise-2'), 10 * SIZE, { ...fastRetry, onEvent: (e) => e.type === 'downloaded' && downloaded.push(e.bytes) });
  await cache.ensure(m.hash, b.storage, (p) => p.phase === 'download' && seen.push(cache.downloads()));
  assert.ok(seen.length >= 2);
  assert.ok(seen.every((d) => d.length === 1 && d[0]!.hash === m.hash && d[0]!.name === 'm0' && d[0]!.bytesTotal === m.totalSize));
  assert.equal(seen[0]![0]!.bytesDone, 0, 'listed from the start of the download');
  assert.equal(seen.at(-1)![0]!.bytesDone, m.totalSize);
  assert.deepEqual(cache.downloads(), [], 'nothing in progress once done');
  assert.ok(cache.downloadBytesPerSecond() > 0);
  // A cached model's check is not a download, and does not change the rate.
  const rate = cache.downloadBytesPerSecond();
  await cache.ensure(m.hash, b.storage, () => assert.deepEqual(cache.downloads(), []), { verify: true });
  assert.equal(cache.downloadBytesPerSecond(), rate);
  await cache2.ensure(m.hash, b.storage);
  assert.deepEqual(downloaded, [m.totalSize]);
});

test('the measured rate leaves out downloads too small to measure the link (per-request overhead)', async () => {
  assert.equal(RATE_MIN_BYTES, 8 * 1024 * 1024);
  const downloaded: { bytes: number; ms: number }[] = [];
  const onEvent = (e: CacheEvent) => e.type === 'downloaded' && downloaded.push({ bytes: e.bytes, ms: e.ms });
  // By default a 200 KB model measures nothing: the scheduler keeps its assumed rate.
  const byDefault = new ModelCache(cacheDir('rate-default'), 10 * SIZE, { ...fastRetry, onEvent });
  await byDefault.ensure(models[0]!.hash, b.storage);
  assert.equal(downloaded.length, 1);
  assert.equal(byDefault.downloadBytesPerSecond(), 0, 'a small download does not count');
  // With a 1 MiB threshold: a small and a large download, and the rate is the large one's alone.
  const big = (await addModel(b.storage, 'rate-big', 'generator-asset', writeModel(join(b.dir, 'rate-big'), { 'w.bin': Buffer.alloc(2 * 1024 * 1024, 6) }))).manifest;
  downloaded.length = 0;
  const cache = new ModelCache(cacheDir('rate-threshold'), 20 * 1024 * 1024, { ...fastRetry, onEvent, rateMinBytes: 1024 * 1024 });
  await cache.ensure(models[1]!.hash, b.storage);
  assert.equal(cache.downloadBytesPerSecond(), 0);
  await cache.ensure(big.hash, b.storage);
  const [small, large] = downloaded;
  assert.equal(small!.bytes, models[1]!.totalSize);
  assert.equal(large!.bytes, big.totalSize);
  assert.equal(cache.downloadBytesPerSecond(), (large!.bytes * 1000) / large!.ms);
});

test('a full check asked for while a cheap one is under way gets its own full check', async () => {
  const m = models[2]!;
  const events: CacheEvent[] = [];
  const dir = cacheDir('join');
  const cache = new ModelCache(dir, 10 * SIZE, { ...fastRetry, onEvent: (e) => events.push(e) });
  await cache.ensure(m.hash, b.storage);
  events.length = 0;
  const [cheap, full] = await Promise.all([cache.ensure(m.hash, b.storage), cache.ensure(m.hash, b.storage, undefined, { verify: true })]);
  assert.equal(cheap, full);
  // The cheap check trusted every unchanged stamp (read nothing); the full one that joined it read every byte.
  assert.deepEqual(events, [{ type: 'rehashed', hash: m.hash, bytes: m.totalSize, full: true }]);
});

test('switching back and forth between cached models re-hashes nothing; a change to either is still caught at its next use', async () => {
  const [m0, m1] = models as [ModelManifest, ModelManifest];
  const events: CacheEvent[] = [];
  const dir = cacheDir('switch');
  const cache = new ModelCache(dir, 10 * SIZE, { ...fastRetry, onEvent: (e) => events.push(e) });
  const paths = [await cache.ensure(m0.hash, b.storage), await cache.ensure(m1.hash, b.storage)];
  // One round first: on a kernel with coarse timestamps a just-written file is hashed once more (file-stamp.ts).
  for (const m of [m0, m1]) await cache.ensure(m.hash, b.storage);
  events.length = 0;
  const progress: TransferProgress[] = [];
  for (let i = 0; i < 20; i++) await cache.ensure((i % 2 ? m1 : m0).hash, b.storage, (p) => progress.push(p));
  assert.deepEqual([...events], [], 'twenty switches: no file read again, nothing fetched');
  assert.ok(progress.every((p) => p.bytesDone === 0), 'no verify bytes reported');

  // Then each model's weights get a flipped byte with the mtime set back: each is caught at its next use.
  for (const p of paths) flipByte(join(p, 'weights.bin'), 11, true);
  const verified: number[] = [];
  for (const m of [m0, m1]) {
    let read = 0;
    await cache.ensure(m.hash, b.storage, (p) => p.phase === 'verify' && (read = p.bytesDone));
    verified.push(read);
  }
  assert.deepEqual(
    events.map((e) => [e.type, e.hash]),
    [
      ['corrupt', m0.hash],
      ['downloaded', m0.hash],
      ['corrupt', m1.hash],
      ['downloaded', m1.hash],
    ],
  );
  // Only the changed file was read (the config file's stamp still held).
  assert.deepEqual(verified, [SIZE - 10, SIZE - 10]);
});

test('coarse timestamps: a stamp taken within RACY_NS of its file\'s last change is not trusted (hashed again at the next use), a later one is', async () => {
  const m = models[0]!;
  const events: CacheEvent[] = [];
  const dir = cacheDir('coarse');
  const coarse = new ModelCache(dir, 10 * SIZE, { ...fastRetry, fineTimestamps: false, onEvent: (e) => events.push(e) });
  const stamps = () => Object.values((JSON.parse(readFileSync(join(dir, '.meta', `${m.hash}.json`), 'utf8')) as { stamps: Record<string, FileStamp> }).stamps);
  const racyBytes = () => stamps().filter(isRacy).reduce((n, st) => n + st.size, 0);
  const rehashed = (bytes: number) => (bytes > 0 ? [{ type: 'rehashed', hash: m.hash, bytes, full: false }] : []);
  await coarse.ensure(m.hash, b.storage);
  events.length = 0;
  // Stamped as the download installed the files, just after writing them: those stamps are racy, and their files read again.
  let expected = racyBytes();
  await coarse.ensure(m.hash, b.storage);
  assert.deepEqual(events.splice(0), rehashed(expected));
  // Once the clock is past every file's last change by RACY_NS, the next check's stamps are not racy …
  const settled = Number(stamps().reduce((n, st) => (BigInt(st.ctimeNs) > n ? BigInt(st.ctimeNs) : n), 0n) + RACY_NS) / 1e6 + 1;
  while (Date.now() <= settled) await new Promise((r) => setTimeout(r, 5));
  expected = racyBytes();
  await coarse.ensure(m.hash, b.storage);
  assert.deepEqual(events.splice(0), rehashed(expected));
  assert.equal(racyBytes(), 0);
  // … and trusted from then on.
  for (let i = 0; i < 3; i++) await coarse.ensure(m.hash, b.storage);
  assert.deepEqual([...events], []);
  // With fine-grained timestamps even a fresh stamp is trusted.
  const fine = new ModelCache(cacheDir('fine'), 10 * SIZE, { ...fastRetry, fineTimestamps: true, onEvent: (e) => events.push(e) });
  await fine.ensure(m.hash, b.storage);
  events.length = 0;
  await fine.ensure(m.hash, b.storage);
  assert.deepEqual([...events], []);
});

test('a manifest read that fails is tried again with the download attempts; a missing one is final at once', async () => {
  const m = models[1]!;
  const client = b.storage.client;
  const get = client.getObject.bind(client);
  let manifestReads = 0;
  // The first two manifest reads meet a refused connection (the request never reaches the server).
  client.getObject = (async (bucket: string, key: string) => {
    if (key.endsWith('/manifest.json') && ++manifestReads <= 2) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    return get(bucket, key);
  }) as typeof client.getObject;
  try {
    const cache = new ModelCache(cacheDir('manifest-retry'), 10 * SIZE, { attempts: 3, retryDelayMs: 10 });
    const path = await cache.ensure(m.hash, b.storage);
    assert.equal(manifestReads, 3);
    assert.ok(existsSync(join(path, 'weights.bin')));
    manifestReads = 0;
    const short = new ModelCache(cacheDir('manifest-retry-2'), 10 * SIZE, { attempts: 2, retryDelayMs: 10 });
    await assert.rejects(short.ensure(m.hash, b.storage), /manifest of model .* after 2 tries: connect ECONNREFUSED/);
    manifestReads = 10;
    const before = manifestReads;
    await assert.rejects(short.ensure('e'.repeat(64), b.storage), /not in the registry/);
    assert.equal(manifestReads, before + 1, 'a manifest that is not there is not asked for again');
  } finally {
    client.getObject = get;
  }
});

test('opening a cache folder that does not exist yet creates nothing until the first download', async () => {
  const dir = cacheDir('lazy');
  const cache = new ModelCache(dir, 10 * SIZE, fastRetry);
  await cache.ready();
  assert.deepEqual(cache.list(), []);
  assert.ok(!existsSync(dir));
  const path = await cache.ensure(models[0]!.hash, b.storage);
  assert.ok(existsSync(join(path, 'weights.bin')));
});

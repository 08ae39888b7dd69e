/**
 * Model download rate from s3rver: ModelCache.ensure (stream → sha256 →
 * temp folder → verify → rename) beside a plain `minio` fGetObject of the
 * same object, as MB/s and their ratio (goal ≥ 0.9), and the rate the node
 * advertises to the scheduler (ModelCacheState.download_bytes_per_s: the
 * cache's own measure of the download attempt). Also the add (hash +
 * multipart upload) rate and how long adding the same content again takes.
 * Alternating runs, medians; the last line is JSON. Time to first image on a
 * cold vs a warm farm is bench/model-cold-warm.ts.
 * HASH=worker|inline forces where the cache hashes (default: its own pick,
 * by core count: packages/registry/src/hash-worker.ts).
 *   node --import tsx bench/model-fetch.ts [MB=128] [RUNS=3]
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { modelFileKey, Storage } from '@nightshift/common';
import { startS3Server, tempDir } from '@nightshift/devfarm';
import { availableParallelism, loadavg } from 'node:os';
import { addModel, ModelCache } from '@nightshift/registry';

const MB = Number(process.argv[2] ?? 128);
const RUNS = Number(process.argv[3] ?? 3);
const bytes = MB * 1024 * 1024;
const HASH = process.env.HASH;
if (HASH !== undefined && HASH !== 'worker' && HASH !== 'inline') throw new Error('HASH must be worker or inline');
const hashOpts = HASH ? { hashOffThread: HASH === 'worker' } : {};

const tmp = tempDir('nightshift-bench-model-fetch-');
const s3 = await startS3Server(join(tmp.dir, 's3'));
try {
  const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  await storage.ensureBucket();

  const file = join(tmp.dir, 'model.bin');
  const out = createWriteStream(file);
  for (let left = bytes; left > 0; left -= 1 << 20) if (!out.write(randomBytes(Math.min(left, 1 << 20)))) await once(out, 'drain');
  out.end();
  await once(out, 'finish');

  let t = performance.now();
  const { manifest } = await addModel(storage, 'bench', 'diffusion', file);
  const addS = (performance.now() - t) / 1000;
  t = performance.now();
  const again = await addModel(storage, 'bench', 'diffusion', file);
  const readdS = (performance.now() - t) / 1000;
  if (!again.existed) throw new Error('re-add uploaded again');
  console.log(`${MB} MB model ${manifest.hash.slice(0, 12)}: add ${(MB / addS).toFixed(1)} MB/s (hash + multipart upload), re-add ${readdS.toFixed(2)} s (hash only)`);

  const plain: number[] = [];
  const cached: number[] = [];
  const advertised: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const dest = join(tmp.dir, `plain-${r}.bin`);
    t = performance.now();
    await storage.client.fGetObject(storage.bucket, modelFileKey(manifest.hash, 'model.bin'), dest);
    plain.push(MB / ((performance.now() - t) / 1000));
    await rm(dest);

    const dir = join(tmp.dir, `cache-${r}`);
    const cache = new ModelCache(dir, 2 * bytes, hashOpts);
    t = performance.now();
    await cache.ensure(manifest.hash, storage);
    cached.push(MB / ((performance.now() - t) / 1000));
    advertised.push(cache.downloadBytesPerSecond() / (1024 * 1024));
    await rm(dir, { recursive: true });
    console.log(`run ${r + 1}: fGetObject ${plain.at(-1)!.toFixed(1)} MB/s, ModelCache ${cached.at(-1)!.toFixed(1)} MB/s, node advertises ${advertised.at(-1)!.toFixed(1)} MB/s`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const result = {
    bench: 'model-fetch',
    mb: MB,
    runs: RUNS,
    hash: HASH ?? 'auto',
    cores: availableParallelism(),
    load1: +loadavg()[0]!.toFixed(2),
    addMBps: +(MB / addS).toFixed(1),
    readdSeconds: +readdS.toFixed(2),
    fGetObjectMBps: +median(plain).toFixed(1),
    modelCacheMBps: +median(cached).toFixed(1),
    ratio: +(median(cached) / median(plain)).toFixed(3),
    nodeAdvertisedMBps: +median(advertised).toFixed(1),
    advertisedRatio: +(median(advertised) / median(plain)).toFixed(3),
  };
  console.log(JSON.stringify(result));
} finally {
  await s3.stop();
  tmp.cleanup();
}

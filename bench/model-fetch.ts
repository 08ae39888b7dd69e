/**
 * Model download rate from s3rver: ModelCache.ensure (stream → sha256 →
 * temp folder → verify → rename) beside a plain `minio` fGetObject of the
 * same object, as MB/s and their ratio (goal ≥ 0.9), and the rate the node
 * advertises to the scheduler (ModelCacheState.download_bytes_per_s: the
 * cache's own measure of the download attempt). Also the add (hash +
 * multipart upload) rate and how long adding the same content again takes.
 * Alternating runs, medians.
 *
 * Then time to first image on a one-node farm (coordinator, NATS, s3rver, an
 * onnx gpu-node, all real processes): a sweep on a registry model the node
 * has never seen (cold: download, verify, load, render) and a second sweep
 * on it (warm: cached and loaded). The model is nightshift-tiny-sd plus a
 * TTFI_MB padding file standing in for a real checkpoint's size (the
 * backend never reads it; the node downloads and verifies it like any file).
 * The last line is JSON.
 *   node --import tsx bench/model-fetch.ts [MB=128] [RUNS=3] [TTFI_MB=256]
 */
import { randomBytes } from 'node:crypto';
import { cpSync, createWriteStream, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { modelFileKey, Storage } from '@nightshift/common';
import { startFarm, startS3Server, tempDir, waitFor, waitForNodes } from '@nightshift/devfarm';
import { ensureTinySd } from '@nightshift/models';
import { addModel, ModelCache } from '@nightshift/registry';

const MB = Number(process.argv[2] ?? 128);
const RUNS = Number(process.argv[3] ?? 3);
const TTFI_MB = Number(process.argv[4] ?? 256);
const bytes = MB * 1024 * 1024;

async function writeRandom(file: string, size: number): Promise<void> {
  const out = createWriteStream(file);
  for (let left = size; left > 0; left -= 1 << 20) if (!out.write(randomBytes(Math.min(left, 1 << 20)))) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
}

/** Seconds from submitting a sweep to its first rendered image, cold (model never seen) then warm. */
async function timeToFirstImage(dir: string): Promise<{ coldS: number; warmS: number; modelMB: number }> {
  const model = join(dir, 'bench-sd');
  cpSync(await ensureTinySd(join(dir, 'built')), model, { recursive: true });
  await writeRandom(join(model, 'padding.bin'), TTFI_MB * 1024 * 1024);
  const config = join(dir, 'onnx-node.yaml');
  writeFileSync(config, 'procedural: false\nonnx:\n  threads: 1\n');
  const farm = await startFarm({ dir: join(dir, 'farm'), nodes: 1, modelCache: {}, nodeEnv: () => ({ NIGHTSHIFT_NODE_CONFIG: config }) });
  try {
    await waitForNodes(farm.apiUrl, 1);
    const { manifest } = await addModel(farm.storage, 'bench-sd', 'diffusion', model);
    const firstImage = async (start: number) => {
      const t = performance.now();
      const spec = { name: `ttfi ${start}`, prompts: ['a castle on a hill'], seeds: { start, count: 2 }, backend: 'onnx', model: 'bench-sd', params: { width: 64, height: 64, steps: 2 } };
      const res = await fetch(`${farm.apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
      const { id } = (await res.json()) as { id: string };
      if (res.status !== 201) throw new Error(`submit: ${res.status} ${JSON.stringify(id)}`);
      await waitFor('the first image', async () => {
        const s = (await (await fetch(`${farm.apiUrl}/api/sweeps/${id}`)).json()) as { status: string; counts: Record<string, number> };
        if (s.status === 'failed') throw new Error(`sweep ${id} failed`);
        return (s.counts.done ?? 0) >= 1;
      }, 300_000, 20);
      return (performance.now() - t) / 1000;
    };
    const coldS = await firstImage(1);
    const warmS = await firstImage(100);
    return { coldS, warmS, modelMB: manifest.totalSize / (1024 * 1024) };
  } finally {
    await farm.stop();
  }
}

const tmp = tempDir('nightshift-bench-model-fetch-');
const s3 = await startS3Server(join(tmp.dir, 's3'));
let result: Record<string, unknown>;
try {
  const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  await storage.ensureBucket();

  const file = join(tmp.dir, 'model.bin');
  await writeRandom(file, bytes);

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
    const cache = new ModelCache(dir, 2 * bytes);
    t = performance.now();
    await cache.ensure(manifest.hash, storage);
    cached.push(MB / ((performance.now() - t) / 1000));
    advertised.push(cache.downloadBytesPerSecond() / (1024 * 1024));
    await rm(dir, { recursive: true });
    console.log(`run ${r + 1}: fGetObject ${plain.at(-1)!.toFixed(1)} MB/s, ModelCache ${cached.at(-1)!.toFixed(1)} MB/s, node advertises ${advertised.at(-1)!.toFixed(1)} MB/s`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  result = {
    bench: 'model-fetch',
    mb: MB,
    runs: RUNS,
    addMBps: +(MB / addS).toFixed(1),
    readdSeconds: +readdS.toFixed(2),
    fGetObjectMBps: +median(plain).toFixed(1),
    modelCacheMBps: +median(cached).toFixed(1),
    ratio: +(median(cached) / median(plain)).toFixed(3),
    nodeAdvertisedMBps: +median(advertised).toFixed(1),
    advertisedRatio: +(median(advertised) / median(plain)).toFixed(3),
  };
} finally {
  await s3.stop();
}
try {
  const ttfi = await timeToFirstImage(join(tmp.dir, 'ttfi'));
  console.log(`time to first image, ${ttfi.modelMB.toFixed(0)} MB registry model, one onnx node: cold ${ttfi.coldS.toFixed(2)} s, warm ${ttfi.warmS.toFixed(2)} s`);
  result = { ...result, ttfiModelMB: +ttfi.modelMB.toFixed(1), ttfiColdS: +ttfi.coldS.toFixed(2), ttfiWarmS: +ttfi.warmS.toFixed(2) };
} finally {
  tmp.cleanup();
}
console.log(JSON.stringify(result));

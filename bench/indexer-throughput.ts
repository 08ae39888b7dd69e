/**
 * Indexer throughput with the built-in test model, over real nats-server and
 * s3rver: N rendered-image events are queued first (a morning-after burst),
 * then the indexer is started and timed until every image is searchable.
 * Prints images/s, where the time goes (per stage, and CPU per process), and
 * peak memory; then the same work without NATS and S3 (decode + embed +
 * store only), to separate our pipeline from the local servers.
 *
 *   node --import tsx bench/indexer-throughput.ts [--n 2000] [--size 256] [--batch 32] [--concurrency 3] [--distinct 200]
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectBus, createLogger, ensureStream, loadConfig, Storage } from '@nightshift/common';
import { eachLimit, fixtureImage, type FixtureImage, publishRendered, putFixture, startNatsServer, startS3Server, tempDir } from '@nightshift/devfarm';
import { IndexStore, loadIndexerOptions, startIndexer } from '@nightshift/indexer';
import { ClipEmbedder, ensureTinyClip } from '@nightshift/models';
import { metaFromEvent } from '../services/indexer/src/consumer.js';

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    size: { type: 'string', default: '256' },
    batch: { type: 'string', default: '32' },
    concurrency: { type: 'string', default: '3' },
    distinct: { type: 'string', default: '200' },
    'e2e-only': { type: 'boolean', default: false },
  },
});
const N = Number(args.n);
const SIZE = Number(args.size);
const BATCH = Number(args.batch);
const CONC = Number(args.concurrency);
const DISTINCT = Math.min(N, Number(args.distinct));

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
/** Pid of the process whose command line contains all the words (read-only /proc scan). */
function findPid(...words: string[]): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (words.every((w) => cmd.includes(w))) return Number(d);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

const tmp = tempDir('nightshift-bench-');
const nats = await startNatsServer(join(tmp.dir, 'nats'));
const s3 = await startS3Server(join(tmp.dir, 's3'));
const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
await storage.ensureBucket();
const bus = await connectBus(nats.url, 'bench');
await ensureStream(bus.jsm);

console.log(`machine: ${(await import('node:os')).cpus().length} cpus (${(await import('node:os')).cpus()[0]?.model}), node ${process.version}, load ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log(`setup: ${N} images of ${SIZE}x${SIZE} (${DISTINCT} distinct renders), batch ${BATCH}, concurrency ${CONC}`);
const prompts = ['a red circle', 'a blue square', 'green stripes', 'a yellow triangle', 'purple circles and orange stripes', 'a black square on white', 'cyan triangles', 'pink and brown dots'];
let t = performance.now();
const pool: FixtureImage[] = [];
for (let i = 0; i < DISTINCT; i++) pool.push(await fixtureImage({ prompt: prompts[i % prompts.length]!, seed: i, size: SIZE }));
const fixtures: FixtureImage[] = [];
for (let i = 0; i < N; i++) {
  const base = pool[i % DISTINCT]!;
  const renderKey = `bench${String(i).padStart(7, '0')}`;
  fixtures.push({ png: base.png, event: { ...base.event, renderKey, key: `images/${renderKey}.png`, createdAt: new Date(Date.now() + i).toISOString() } });
}
await eachLimit(fixtures, 16, (f) => putFixture(storage, f));
for (const f of fixtures) await publishRendered(bus, f.event);
console.log(`queued ${N} images in S3 and ${N} events in JetStream in ${((performance.now() - t) / 1000).toFixed(1)} s (avg PNG ${Math.round(pool.reduce((s, f) => s + f.png.length, 0) / pool.length / 1024)} KiB)`);

const env = {
  NIGHTSHIFT_NATS_URL: nats.url,
  NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
  NIGHTSHIFT_DATA_DIR: join(tmp.dir, 'indexer'),
  NIGHTSHIFT_INDEXER_PORT: '0',
  NIGHTSHIFT_INDEXER_BATCH: String(BATCH),
  NIGHTSHIFT_INDEXER_CONCURRENCY: String(CONC),
};
const config = loadConfig(env as NodeJS.ProcessEnv);
const s3Pid = findPid('s3-server-main', String(s3.port));
const natsPid = findPid('nats-server', String(nats.port));
const cpu0 = { me: process.cpuUsage(), s3: s3Pid ? cpuSeconds(s3Pid) : 0, nats: natsPid ? cpuSeconds(natsPid) : 0 };
const ix = await startIndexer(config, createLogger('indexer', 'warn'), loadIndexerOptions(env as NodeJS.ProcessEnv));
t = performance.now();
const cpuStart = process.cpuUsage();
let peakRss = 0;
while (ix.store.index.size < N) {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  await new Promise((r) => setTimeout(r, 20));
}
const wall = (performance.now() - t) / 1000;
const cpuIx = process.cpuUsage(cpuStart);
const st = ix.consumer.stats;
const per = (ms: number) => `${((ms / N) * 1000).toFixed(0)} µs/img`;
console.log(`\n== end to end (NATS + S3 + indexer): ${N} images in ${wall.toFixed(2)} s = ${(N / wall).toFixed(0)} images/s`);
console.log(`   peak in flight ${st.peakInFlight} (bound ${ix.consumer.maxInFlight}), batches ${st.batches}, peak RSS ${(peakRss / 1e6).toFixed(0)} MB`);
console.log(`   stage time summed over batches (stages of concurrent batches overlap): S3 fetch ${per(st.times.fetchMs)}, decode+preprocess ${per(st.times.decodeMs)}, embed ${per(st.times.embedMs)}, store ${per(st.times.storeMs)}`);
const cpuS3 = s3Pid ? cpuSeconds(s3Pid) - cpu0.s3 : NaN;
const cpuNats = natsPid ? cpuSeconds(natsPid) - cpu0.nats : NaN;
const ixCpu = (cpuIx.user + cpuIx.system) / 1e6;
console.log(`   CPU: indexer ${ixCpu.toFixed(2)} s (${((ixCpu / N) * 1e6).toFixed(0)} µs/img), s3rver ${cpuS3.toFixed(2)} s (${((cpuS3 / N) * 1e6).toFixed(0)} µs/img), nats-server ${cpuNats.toFixed(2)} s; wall ${wall.toFixed(2)} s on ${(await import('node:os')).cpus().length} cores`);
const e2eSummary = { images: N, imagesPerS: N / wall, peakRssMB: peakRss / 1e6, indexerCpuUsPerImage: (ixCpu / N) * 1e6, s3rverCpuUsPerImage: (cpuS3 / N) * 1e6, natsCpuS: cpuNats };
await ix.stop();
if (args['e2e-only']) {
  // Machine-readable summary, last line (bench/ convention).
  console.log(JSON.stringify({ bench: 'indexer-throughput', endToEnd: e2eSummary }));
  await bus.nc.close();
  await Promise.all([nats.stop(), s3.stop()]);
  tmp.cleanup();
  process.exit(0);
}

// Without NATS and S3: the same bytes from memory, through decode, embed and store.
const folder = await ensureTinyClip(join(tmp.dir, 'models'));
const embedder = await ClipEmbedder.load(folder, { imageBatchSize: BATCH, threads: 1, spinning: false }); // as the indexer loads it
mkdirSync(join(tmp.dir, 'local'), { recursive: true });
const store = IndexStore.open(join(tmp.dir, 'local'), { id: 'bench', dim: embedder.dim }, { dupDistance: 0.02, exactBelow: 20_000 }, createLogger('bench', 'warn'));
const times = { decode: 0, embed: 0, store: 0 };
t = performance.now();
const c0 = process.cpuUsage();
const chunks: FixtureImage[][] = [];
for (let i = 0; i < N; i += BATCH) chunks.push(fixtures.slice(i, i + BATCH));
await eachLimit(chunks, CONC, async (chunk) => {
  let s = performance.now();
  const prepared = await Promise.all(chunk.map((f) => embedder.prepareImage(f.png)));
  times.decode += performance.now() - s;
  s = performance.now();
  const vectors = await embedder.embedPrepared(prepared);
  times.embed += performance.now() - s;
  s = performance.now();
  store.store(chunk.map((f, i) => ({ meta: metaFromEvent(f.event), vector: vectors[i]! })));
  times.store += performance.now() - s;
});
const wall2 = (performance.now() - t) / 1000;
const c2 = process.cpuUsage(c0);
console.log(`\n== without NATS and S3 (decode + embed + store, same concurrency): ${(N / wall2).toFixed(0)} images/s, CPU ${(((c2.user + c2.system) / N)).toFixed(0)} µs/img`);
console.log(`   summed stage time: decode+preprocess ${per(times.decode)}, embed ${per(times.embed)}, store ${per(times.store)}`);
// Sequential single-image costs, for a clean per-stage picture (no overlap).
const sample = fixtures.slice(0, Math.min(256, N));
let s = performance.now();
for (const f of sample) await embedder.prepareImage(f.png);
const decodeSeq = (performance.now() - s) / sample.length;
const prepared = await Promise.all(sample.map((f) => embedder.prepareImage(f.png)));
s = performance.now();
await embedder.embedPrepared(prepared);
const embedSeq = (performance.now() - s) / sample.length;
s = performance.now();
for (const f of sample) await storage.get(f.event.key);
const fetchSeq = (performance.now() - s) / sample.length;
console.log(`   one at a time, no overlap: S3 GET ${(fetchSeq * 1000).toFixed(0)} µs, decode+preprocess ${(decodeSeq * 1000).toFixed(0)} µs, embed (batched) ${(embedSeq * 1000).toFixed(0)} µs per image`);
store.close();
await embedder.dispose();
await bus.nc.close();
await Promise.all([nats.stop(), s3.stop()]);
tmp.cleanup();
// Machine-readable summary, last line (bench/ convention).
console.log(
  JSON.stringify({
    bench: 'indexer-throughput',
    endToEnd: e2eSummary,
    inMemory: { imagesPerS: N / wall2, cpuUsPerImage: (c2.user + c2.system) / N },
    sequentialUsPerImage: { s3Get: fetchSeq * 1000, decode: decodeSeq * 1000, embedBatched: embedSeq * 1000 },
  }),
);

/**
 * The indexer over real nats-server and s3rver (in this process, restarted
 * between steps): upscaled variants, favorites across restarts, reindex from
 * the bucket alone (live, and into an empty data folder with the `reindex`
 * command), and a model change that re-embeds everything from S3.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { addPngTextChunk, connectBus, createLogger, encodeJson, readPngTextChunks, ensureStream, loadConfig, Storage, SUBJECTS, type Bus } from '@nightshift/common';
import { fixtureImage, type FixtureImage, type NatsServer, publishRendered, putFixture, type S3Server, SERVICE_MAIN, startNatsServer, startProcess, startS3Server, tempDir, waitFor } from '@nightshift/devfarm';
import { startIndexer, type RunningIndexer } from '@nightshift/indexer';
import { ensureTinyClip } from '@nightshift/models';
import type { SearchResult } from '../../services/indexer/src/search.js';

/** The indexer's own result type: the test reads what the API promises. */
type Result = SearchResult;

const PROMPTS = ['a red circle', 'a blue square', 'green stripes', 'a yellow triangle', 'purple circles'];
const QUERIES = ['q=red&k=10', 'q=square&k=10', 'q=a yellow triangle&k=5&sweep=sweep-b', 'q=circle&k=8&duplicates=hide', 'q=blue&k=20&prompt=circle'];

describe('indexer search over NATS and S3', { timeout: 180_000 }, () => {
  let tmp: ReturnType<typeof tempDir>;
  let nats: NatsServer;
  let s3: S3Server;
  let storage: Storage;
  let bus: Bus;
  let ix: RunningIndexer | undefined;
  const fixtures: FixtureImage[] = [];
  const log = createLogger('indexer', 'warn');

  const env = (dataDir: string, extra: Record<string, string> = {}) => ({
    NIGHTSHIFT_NATS_URL: nats.url,
    NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
    NIGHTSHIFT_DATA_DIR: join(tmp.dir, dataDir),
    NIGHTSHIFT_INDEXER_PORT: '0',
    ...extra,
  });
  async function start(dataDir = 'indexer', extra: Record<string, string> = {}): Promise<RunningIndexer> {
    const e = env(dataDir, extra) as NodeJS.ProcessEnv;
    const { loadIndexerOptions } = await import('@nightshift/indexer');
    ix = await startIndexer(loadConfig(e), log, loadIndexerOptions(e));
    return ix;
  }
  const url = (path: string) => `http://127.0.0.1:${ix!.port}${path}`;
  const health = async () => (await (await fetch(url('/healthz'))).json()) as { indexed: number; stale: number; variants: number; reindex: { running: boolean; kind?: string; done: number } };
  const search = async (query: string) => {
    const res = await fetch(url(`/api/search?${query}`));
    assert.equal(res.status, 200, query);
    return ((await res.json()) as { results: Result[] }).results;
  };
  const answers = async () => Promise.all(QUERIES.map(search));

  before(async () => {
    tmp = tempDir('nightshift-indexer-search-');
    [nats, s3] = await Promise.all([startNatsServer(join(tmp.dir, 'nats')), startS3Server(join(tmp.dir, 's3'))]);
    storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
    bus = await connectBus(nats.url, 'test');
    await ensureStream(bus.jsm);
    // Uploaded one by one, each event stamped after its upload, as the farm does.
    for (const sweep of ['sweep-a', 'sweep-b']) {
      for (const prompt of PROMPTS) {
        for (const seed of sweep === 'sweep-a' ? [2, 3] : [4]) {
          const f = await fixtureImage({ prompt, seed, sweepId: sweep, size: 64 });
          await putFixture(storage, f);
          f.event.createdAt = new Date().toISOString();
          fixtures.push(f);
        }
      }
    }
    for (const f of fixtures) await publishRendered(bus, f.event);
    // An upscale of the first image, as the gpu-node stores it and the coordinator announces it.
    const first = fixtures[0]!.event;
    // (Like the upscale backend: the original's parameters chunk plus a `postprocessing` one naming the upscaler.)
    let up: Buffer = await sharp(fixtures[0]!.png).resize(256, 256).png().toBuffer();
    up = addPngTextChunk(up, 'postprocessing', 'Postprocess upscale by: 4, Postprocess upscaler: tiny-x4, Postprocess size: 256x256');
    up = addPngTextChunk(up, 'parameters', readPngTextChunks(fixtures[0]!.png).parameters!);
    await storage.put(`upscaled/${first.renderKey}.png`, up, 'image/png', { 'sweep-id': first.sweepId, 'render-key': first.renderKey, 'job-id': 'job-up' });
    await bus.js.publish(SUBJECTS.imageUpscaled, encodeJson({ renderKey: first.renderKey, key: `upscaled/${first.renderKey}.png`, sourceKey: first.key, model: 'tiny-x4', createdAt: new Date().toISOString() }));
    await start();
    await waitFor('all images and the upscale indexed', async () => {
      const h = await health();
      return h.indexed === fixtures.length && h.variants === 1;
    }, 60_000, 100);
  });

  after(async () => {
    await ix?.stop();
    await bus?.nc.close();
    await Promise.all([nats?.stop(), s3?.stop()]);
    tmp?.cleanup();
  });

  test('an upscale is a variant of its original: one result, with a link to it', async () => {
    const first = fixtures[0]!.event;
    const results = await search(`image=${first.key}&k=50`);
    assert.equal(results.length, fixtures.length, 'no separate entry for the upscale');
    assert.equal(results[0]!.key, first.key);
    assert.equal(results[0]!.upscaled?.key, `upscaled/${first.renderKey}.png`);
    // Searching by the upscale's key means its original.
    assert.equal((await search(`image=upscaled/${first.renderKey}.png&k=1`))[0]!.key, first.key);
    const detail = (await (await fetch(url(`/api/images/${first.key}`))).json()) as { variants: { key: string; model: string }[] };
    assert.deepEqual(detail.variants.map((v) => [v.key, v.model]), [[`upscaled/${first.renderKey}.png`, 'tiny-x4']]);
  });

  test('favorites are persisted: they survive a restart and filter results', async () => {
    const key = fixtures.find((f) => f.event.prompt === 'a blue square')!.event.key;
    assert.equal((await fetch(url(`/api/favorites/${key}`), { method: 'PUT' })).status, 200);
    const other = fixtures.find((f) => f.event.prompt === 'a red circle')!.event.key;
    assert.equal((await fetch(url(`/api/favorites/${other}`), { method: 'PUT' })).status, 200);
    assert.equal((await fetch(url(`/api/favorites/${other}`), { method: 'DELETE' })).status, 200);
    await ix!.stop();
    await start();
    const favs = await search('q=square&k=50&favorites=true');
    assert.deepEqual(favs.map((r) => [r.key, r.favorite]), [[key, true]]);
    assert.equal((await search(`image=${other}&k=1`))[0]!.favorite, false);
  });

  test('reindex from the bucket reproduces the same results (live, and into an empty data folder)', async () => {
    const before = await answers();
    assert.ok(before.every((r) => r.length > 0));
    assert.ok(before[0]!.some((r) => r.duplicateOf !== null), 'the test model makes same-prompt renders near-duplicates');

    // Live: POST /api/reindex re-reads every image and prunes nothing; favorites stay.
    assert.equal((await fetch(url('/api/reindex'), { method: 'POST' })).status, 202);
    await waitFor('live reindex', async () => !(await health()).reindex.running, 60_000, 100);
    assert.equal((await health()).reindex.done, fixtures.length);
    assert.deepEqual(await answers(), before, 'after the live reindex');

    // From nothing: the `reindex` command into a fresh data folder, then an indexer on it.
    // Favorites are not in the bucket, so only they differ.
    const cli = startProcess('reindex', process.execPath, ['--import', 'tsx', SERVICE_MAIN.indexer, 'reindex'], { env: { ...process.env, ...env('fresh') } });
    assert.equal(await cli.exited, 0, cli.output());
    await ix!.stop();
    await start('fresh');
    assert.equal((await health()).indexed, fixtures.length);
    const fresh = await answers();
    const noFavorite = (rs: Result[][]) => rs.map((r) => r.map((x) => ({ ...x, favorite: false, createdAt: undefined })));
    assert.deepEqual(noFavorite(fresh), noFavorite(before), 'after a reindex into an empty folder');
  });

  test('a model change re-embeds every image from S3 in the background', async () => {
    const before = await answers();
    await ix!.stop();
    // The same weights under another name: a different model id, so every vector is stale.
    const other = join(tmp.dir, 'other-clip');
    cpSync(await ensureTinyClip(join(tmp.dir, 'models')), other, { recursive: true });
    await start('fresh', { NIGHTSHIFT_CLIP_MODEL: other });
    await waitFor('re-embedding finished', async () => {
      const h = await health();
      if (process.env.DEBUG_TEST) console.log(JSON.stringify(h));
      return h.reindex.kind === 'model' && !h.reindex.running && h.stale === 0;
    }, 60_000, 100);
    const h = await health();
    assert.equal(h.reindex.done, fixtures.length);
    assert.equal(h.indexed, fixtures.length);
    assert.deepEqual(await answers(), before);
  });

  test('reindex prunes images that are gone from the bucket', async () => {
    const gone = fixtures.find((f) => f.event.prompt === 'green stripes')!.event;
    await storage.client.removeObject('nightshift', gone.key);
    assert.equal((await fetch(url('/api/reindex'), { method: 'POST' })).status, 202);
    await waitFor('reindex', async () => !(await health()).reindex.running, 60_000, 100);
    const h = (await health()) as Awaited<ReturnType<typeof health>> & { reindex: { pruned: number } };
    assert.equal(h.reindex.pruned, 1);
    assert.equal(h.indexed, fixtures.length - 1);
    assert.ok(!(await search('q=green&k=50')).some((r) => r.key === gone.key));
    assert.equal((await fetch(url(`/api/images/${gone.key}`))).status, 404);
  });
});

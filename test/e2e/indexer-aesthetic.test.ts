/**
 * The aesthetic head over real nats-server and s3rver, the indexer in this
 * process and restarted between steps: images indexed without a head answer
 * /best with 409; the same catalog with NIGHTSHIFT_AESTHETIC_MODEL set is
 * backfilled and /best falls back to the head (scoredBy "aesthetic", the
 * built-in head's yellow images first); images arriving afterwards are scored
 * as they are indexed; with 10 favorites the taste model takes over; a
 * head for another CLIP width stops the start with a clear error; and after
 * a CLIP model change the re-embedded images are scored again unasked.
 */
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectBus, createLogger, ensureStream, loadConfig, Storage, type Bus } from '@nightshift/common';
import { fixtureImage, type FixtureImage, type NatsServer, publishRendered, putFixture, type S3Server, startNatsServer, startS3Server, tempDir, waitFor } from '@nightshift/devfarm';
import { loadIndexerOptions, startIndexer, type RunningIndexer } from '@nightshift/indexer';
import { ensureTinyClip, TINY_AESTHETIC_NAME, tinyAestheticBytes } from '@nightshift/models';
import { scoreCounts } from '../../services/indexer/src/aesthetic-store.js';

interface BestBody {
  results: { key: string; score: number; favorite: boolean; aesthetic?: number }[];
  scoredBy?: string;
  aesthetic?: { head: string; scored: number; unscored: number };
  error?: string;
}

const COLOURS = ['red', 'blue', 'green', 'purple'];

describe('aesthetic head in the indexer over NATS and S3', { timeout: 180_000 }, () => {
  let tmp: ReturnType<typeof tempDir>;
  let nats: NatsServer;
  let s3: S3Server;
  let storage: Storage;
  let bus: Bus;
  let ix: RunningIndexer | undefined;
  const fixtures: FixtureImage[] = [];
  const log = createLogger('indexer', 'warn');

  const env = (extra: Record<string, string> = {}) =>
    ({
      NIGHTSHIFT_NATS_URL: nats.url,
      NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
      NIGHTSHIFT_DATA_DIR: join(tmp.dir, 'indexer'),
      NIGHTSHIFT_INDEXER_PORT: '0',
      ...extra,
    }) as NodeJS.ProcessEnv;
  const start = async (extra: Record<string, string> = {}) => {
    ix = await startIndexer(loadConfig(env(extra)), log, loadIndexerOptions(env(extra)));
    return ix;
  };
  const url = (path: string) => `http://127.0.0.1:${ix!.port}${path}`;
  const health = async () => (await (await fetch(url('/healthz'))).json()) as { indexed: number; aestheticHead: string | null; model: string; reindex: { kind?: string; running: boolean; done: number } };
  const best = async (path: string) => {
    const res = await fetch(url(path));
    return { status: res.status, body: (await res.json()) as BestBody };
  };
  const yellow = (key: string) => fixtures.find((f) => f.event.key === key)!.event.prompt.includes('yellow');
  /** Uploads and announces images of sweep `sweep`: every fourth with a yellow circle beside its object. */
  const publish = async (sweep: string, n: number, firstSeed: number) => {
    for (let i = 0; i < n; i++) {
      const c = COLOURS[i % COLOURS.length]!;
      const f = await fixtureImage({ prompt: i % 4 === 0 ? `a ${c} square and a yellow circle` : `a ${c} square`, seed: firstSeed + i, sweepId: sweep, size: 64 });
      await putFixture(storage, f);
      f.event.createdAt = new Date().toISOString();
      fixtures.push(f);
      await publishRendered(bus, f.event);
    }
  };
  const indexed = (n: number) => waitFor(`${n} images indexed`, async () => (await health()).indexed === n, 60_000, 100);

  before(async () => {
    tmp = tempDir('nightshift-indexer-aesthetic-');
    [nats, s3] = await Promise.all([startNatsServer(join(tmp.dir, 'nats')), startS3Server(join(tmp.dir, 's3'))]);
    storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
    await storage.ensureBucket();
    bus = await connectBus(nats.url, 'test');
    await ensureStream(bus.jsm);
  });

  after(async () => {
    await ix?.stop();
    await bus?.nc.close();
    await Promise.all([nats?.stop(), s3?.stop()]);
    tmp?.cleanup();
  });

  test('without a head: too few favorites is a 409', async () => {
    await start();
    await publish('night', 24, 1);
    await indexed(24);
    assert.equal((await health()).aestheticHead, null);
    const { status, body } = await best('/api/sweeps/night/best?k=6');
    assert.equal(status, 409);
    assert.match(body.error!, /too few favorites to learn from: 0 of the 10/);
    await ix!.stop();
  });

  test('with the head: the catalog is backfilled and /best falls back to it (scoredBy "aesthetic"), yellow first', async () => {
    await start({ NIGHTSHIFT_AESTHETIC_MODEL: TINY_AESTHETIC_NAME });
    const head = (await health()).aestheticHead;
    assert.match(head ?? '', new RegExp(`^${TINY_AESTHETIC_NAME}@`));
    // The start's background backfill, before any ranking could score them on demand.
    await waitFor('the start backfills the catalog', () => scoreCounts(ix!.store.catalog, ix!.model.id, head!).scored === 24, 30_000, 50);
    const { status, body } = await best('/api/sweeps/night/best?k=24');
    assert.equal(status, 200);
    assert.equal(body.scoredBy, 'aesthetic');
    assert.deepEqual(body.aesthetic, { head, scored: 24, unscored: 0 });
    assert.equal(body.results.length, 24);
    assert.deepEqual(body.results.slice(0, 6).map((r) => yellow(r.key)), Array(6).fill(true), 'the six yellow images first');
    assert.ok(body.results.slice(6).every((r) => !yellow(r.key) && r.score <= 5));
    assert.ok(body.results.slice(0, 6).every((r) => r.score > 5));
  });

  test('images that arrive now are scored as they are indexed, without a ranking asking', async () => {
    await publish('later', 8, 100);
    await indexed(32);
    const head = (await health()).aestheticHead!;
    await waitFor('the new images scored', async () => scoreCounts(ix!.store.catalog, ix!.model.id, head).unscored === 0, 30_000, 50);
    const { body } = await best('/api/best?k=3');
    assert.equal(body.scoredBy, 'aesthetic');
    assert.deepEqual(body.aesthetic!.unscored, 0);
  });

  test('with 10 favorites the taste model ranks, with the head\'s score beside its own', async () => {
    const keys = [...fixtures.filter((f) => yellow(f.event.key)), ...fixtures.filter((f) => !yellow(f.event.key))].slice(0, 10).map((f) => f.event.key);
    for (const key of keys) assert.equal((await fetch(url(`/api/favorites/${encodeURIComponent(key)}`), { method: 'PUT' })).status, 200);
    const { status, body } = await best('/api/sweeps/night/best?k=5');
    assert.equal(status, 200);
    assert.equal(body.scoredBy, 'taste');
    assert.ok(body.results.every((r) => typeof r.aesthetic === 'number'));
    await ix!.stop();
    ix = undefined;
  });

  test('a head for another CLIP width stops the start, saying so; the data folder is free again afterwards', async () => {
    const file = join(tmp.dir, 'laion-768.onnx');
    writeFileSync(file, tinyAestheticBytes({ dim: 768 }));
    await assert.rejects(start({ NIGHTSHIFT_AESTHETIC_MODEL: file }), /takes 768-wide embeddings but the CLIP model makes 16-wide ones/);
    ix = undefined;
    await start();
    assert.equal((await health()).indexed, 32);
  });

  test('after a CLIP model change the re-embedded images are scored when the re-embedding ends, without a ranking asking', async () => {
    await ix!.stop();
    // The same tiny CLIP under another folder name: another model id (so every row is re-embedded), the same width.
    const clip = join(tmp.dir, 'renamed-clip');
    cpSync(await ensureTinyClip(join(tmp.dir, 'clip-src')), clip, { recursive: true });
    await start({ NIGHTSHIFT_CLIP_MODEL: clip, NIGHTSHIFT_AESTHETIC_MODEL: TINY_AESTHETIC_NAME });
    const h = await health();
    assert.match(h.model, /^renamed-clip@/);
    assert.equal(h.reindex.kind, 'model');
    await waitFor('the re-embedding done', async () => !(await health()).reindex.running, 60_000, 100);
    assert.equal((await health()).reindex.done, 32);
    await waitFor('the re-embedded images scored', () => scoreCounts(ix!.store.catalog, ix!.model.id, h.aestheticHead!).scored === 32, 30_000, 50);
  });
});

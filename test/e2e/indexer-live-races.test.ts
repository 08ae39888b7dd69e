/**
 * The indexer's consumer and reindexer in this process over a real
 * nats-server and s3rver, with each interleaving pinned down rather than
 * left to timing: a reindex from the bucket while live events keep arriving
 * (the reindex is held between two of its batches while they are indexed),
 * an upscale event whose write meets a locked database, and an event whose
 * key names another image than its renderKey.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { connectBus, createLogger, encodeJson, ensureStream, Storage, STREAM, SUBJECTS, type Bus, type ImageUpscaledEvent, type Logger } from '@nightshift/common';
import { fixtureImage, publishRendered, putFixture, type FixtureImage, type NatsServer, type S3Server, startNatsServer, startS3Server, tempDir, waitFor } from '@nightshift/devfarm';
import { CONSUMER, IndexConsumer, IndexStore, Reindexer, UPSCALED_CONSUMER } from '@nightshift/indexer';
import { ClipEmbedder, ensureTinyClip, type PreparedImage } from '@nightshift/models';

/** An embedder that runs a hook before its n-th batch: the reindexer is held there, mid-listing. */
class PausingEmbedder extends ClipEmbedder {
  private calls = 0;
  private hooks = new Map<number, () => Promise<void>>();

  before(call: number, hook: () => Promise<void>): void {
    this.hooks.set(call, hook);
  }

  override async embedPrepared(images: readonly PreparedImage[]): Promise<Float32Array[]> {
    await this.hooks.get(++this.calls)?.();
    return super.embedPrepared(images);
  }
}

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

const WARN = 40;

describe('indexer races', { timeout: 120_000 }, () => {
  let tmp: ReturnType<typeof tempDir>;
  let nats: NatsServer;
  let s3: S3Server;
  let bus: Bus;
  let modelDir: string;
  let embedder: ClipEmbedder;
  const running: { consumer: IndexConsumer; store: IndexStore }[] = [];
  let n = 0;

  before(async () => {
    tmp = tempDir('nightshift-indexer-races-');
    [nats, s3] = await Promise.all([startNatsServer(join(tmp.dir, 'nats')), startS3Server(join(tmp.dir, 's3'))]);
    bus = await connectBus(nats.url, 'test');
    await ensureStream(bus.jsm);
    modelDir = await ensureTinyClip(join(tmp.dir, 'models'));
    embedder = await ClipEmbedder.load(modelDir);
  });

  after(async () => {
    for (const r of running) {
      await r.consumer.stop();
      r.store.close();
    }
    await embedder?.dispose();
    await bus?.nc.close();
    await Promise.all([nats?.stop(), s3?.stop()]);
    tmp?.cleanup();
  });

  /** A bucket, catalog and live consumer of their own, over an empty stream. */
  async function freshIndexer() {
    for (const r of running.splice(0)) {
      await r.consumer.stop();
      r.store.close();
    }
    for (const name of [CONSUMER, UPSCALED_CONSUMER]) await bus.jsm.consumers.delete(STREAM, name).catch(() => false);
    await bus.jsm.streams.purge(STREAM);
    const i = ++n;
    const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: `races-${i}` });
    await storage.ensureBucket();
    const lines: LogLine[] = [];
    const log: Logger = createLogger('indexer', 'debug', { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
    const dataDir = join(tmp.dir, `indexer-${i}`);
    mkdirSync(dataDir);
    const store = IndexStore.open(dataDir, { id: 'tiny', dim: embedder.dim }, { dupDistance: -1, exactBelow: 1_000 }, log);
    const consumer = new IndexConsumer(bus, storage, store, embedder, log, { batchSize: 4, concurrency: 1, expiresMs: 1_000, ackWaitMs: 30_000 });
    await consumer.start();
    running.push({ consumer, store });
    return { storage, store, consumer, log, lines, dataDir };
  }

  const fixture = (renderKey: string, seed: number) => fixtureImage({ prompt: 'a red circle', seed, size: 64, renderKey });
  const renderKeys = (keys: string[]) => keys.map((k) => k.slice('images/'.length, -'.png'.length)).sort();
  const catalogKeys = (store: IndexStore) => (store.catalog.db.prepare('SELECT render_key FROM images ORDER BY render_key').pluck().all() as string[]);

  test('a reindex from the bucket while images keep arriving live ends with the catalog equal to the bucket', async () => {
    const { storage, store, consumer, log } = await freshIndexer();
    // In the bucket before the reindex: six images (three batches of two for the reindexer) …
    const old: FixtureImage[] = [];
    for (let i = 0; i < 6; i++) old.push(await fixture(`old-${i}`, i));
    for (const f of old) await putFixture(storage, f);
    // … and one indexed live whose object is gone since: the reindex must still prune it.
    const gone = await fixture('old-gone', 9);
    await putFixture(storage, gone);
    await publishRendered(bus, gone.event);
    await waitFor('the doomed image indexed', () => consumer.stats.indexed === 1);
    await storage.client.removeObject(storage.bucket, gone.event.key);

    // Held before its second batch (the first, old-0 and old-1, is stored by then, and the
    // listing has passed the names below): new renders arrive and are indexed live.
    const live: FixtureImage[] = [];
    for (let i = 0; i < 3; i++) live.push(await fixture(`live-${i}`, 20 + i));
    const pausing = await new PausingEmbedder().load(modelDir);
    pausing.before(2, async () => {
      assert.ok(store.catalog.get('old-0'), 'the first batch was stored before the hold');
      for (const f of live) await putFixture(storage, f);
      for (const f of live) await publishRendered(bus, f.event);
      await waitFor('live events indexed during the reindex', () => consumer.stats.indexed === 1 + live.length, 30_000);
    });
    try {
      const reindexer = new Reindexer(storage, store, pausing, log, { batchSize: 2, concurrency: 1 });
      assert.ok(reindexer.start('bucket'));
      const status = await reindexer.wait();
      assert.equal(status.error, undefined);
      assert.equal(status.failed, 0);
      assert.equal(status.done, old.length, 'the reindex itself saw only the images listed when it began');
      assert.equal(status.pruned, 1, 'only the image gone from the bucket is pruned');
    } finally {
      await pausing.dispose();
    }
    const bucket = renderKeys(await storage.list('images'));
    assert.equal(bucket.length, old.length + live.length);
    assert.deepEqual(catalogKeys(store), bucket, 'catalog = bucket');
    assert.equal(store.index.size, bucket.length, 'and every row is searchable');
  });

  test('an upscale event whose write meets a locked database is retried later, not dropped', async () => {
    const { store, consumer, lines, dataDir } = await freshIndexer();
    // Another connection holds the write lock: the consumer's insert waits out busy_timeout, then fails.
    const locker = new Database(join(dataDir, 'indexer.sqlite'));
    locker.exec('BEGIN IMMEDIATE');
    const event: ImageUpscaledEvent = {
      ...(await fixture('orig-1', 1)).event,
      key: 'upscaled/orig-1.png',
      sourceKey: 'images/orig-1.png',
      scale: 4,
      model: 'tiny-x4',
    };
    try {
      await bus.js.publish(SUBJECTS.imageUpscaled, encodeJson(event), { msgID: 'upscaled.orig-1' });
      await waitFor('the first, failing attempt', () => lines.some((l) => l.level >= WARN && /upscale/.test(l.msg)), 30_000);
    } finally {
      locker.exec('COMMIT');
      locker.close();
    }
    await waitFor('the upscale recorded on a later delivery', () => store.catalog.variants(['orig-1']).get('orig-1')?.length === 1, 20_000);
    assert.deepEqual(store.catalog.variants(['orig-1']).get('orig-1')!.map((v) => v.key), ['upscaled/orig-1.png']);
    assert.equal(consumer.stats.retried >= 1, true);
    assert.equal(consumer.stats.failed, 0, 'a busy database is not a malformed event');
    // The ack leaves the consumer after the write; the server counts it when it arrives.
    await waitFor('the upscale event acked', async () => (await bus.jsm.consumers.info(STREAM, UPSCALED_CONSUMER)).num_ack_pending === 0, 20_000);
  });

  test("an event whose key is not its renderKey's image is ignored with a warning, and indexes nothing", async () => {
    const { storage, store, consumer, lines } = await freshIndexer();
    const [a, b, c] = [await fixture('AAA', 1), await fixture('BBB', 2), await fixture('CCC', 3)];
    for (const f of [a, b, c]) await putFixture(storage, f);
    // images/AAA.png announced as renderKey BBB: indexing it would show AAA's picture as BBB.
    await publishRendered(bus, { ...b.event, key: a.event.key });
    await publishRendered(bus, c.event);
    await waitFor('the genuine event after it indexed', () => store.catalog.get('CCC'));
    await waitFor('the forged event settled', async () => (await bus.jsm.consumers.info(STREAM, CONSUMER)).num_ack_pending === 0);
    assert.deepEqual(catalogKeys(store), ['CCC']);
    assert.equal(consumer.stats.refused, 1);
    assert.equal(consumer.stats.indexed, 1);
    const warning = lines.find((l) => l.level === WARN && /key is not its renderKey/.test(l.msg));
    assert.ok(warning, 'a warning names the refused event');
    assert.match(String(warning.err), /images\/AAA\.png is not images\/BBB\.png/);
    // Terminated, not left to come back: nothing is pending or redelivered.
    const info = await bus.jsm.consumers.info(STREAM, CONSUMER);
    assert.equal(info.num_pending, 0);
    assert.equal(info.num_redelivered, 0);
  });
});

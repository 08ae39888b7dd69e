/** Wires the indexer: model, store (catalog + vector index), consumers, reindexer, HTTP. */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { connectBus, ensureStream, natsAuth, opsRoutes, processAlive, storageFromConfig, streamLimits, type Config, type Logger } from '@nightshift/common';
import { openAesthetic } from './aesthetic-setting.js';
import { IndexConsumer } from './consumer.js';
import { createIndexerApp } from './http.js';
import { indexerMetrics } from './metrics.js';
import { loadModel, type LoadedModel } from './model.js';
import { registryCacheCap } from './registry-model.js';
import { loadIndexerOptions, type IndexerOptions } from './options.js';
import { Reindexer } from './reindex.js';
import { IndexStore } from './store.js';
import { Taste } from './taste.js';
import { usearchUnavailable } from './vector-index.js';

export interface RunningIndexer {
  port: number;
  consumer: IndexConsumer;
  store: IndexStore;
  reindexer: Reindexer;
  model: LoadedModel;
  stop(): Promise<void>;
}

/** One indexer per data folder: a second one would write the same snapshot file. */
export function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, 'indexer.lock');
  let pid = 0;
  try {
    pid = Number(readFileSync(file, 'utf8')) || 0;
  } catch {
    /* no lock yet */
  }
  if (pid && pid !== process.pid && processAlive(pid)) {
    throw new Error(`another indexer (pid ${pid}) is using ${dataDir}; stop it first (or use POST /api/reindex on it)`);
  }
  writeFileSync(file, String(process.pid));
  return () => rmSync(file, { force: true });
}

/** Model, store and reindexer, shared by the service and the `reindex` command. */
export async function openIndex(config: Config, opts: IndexerOptions, log: Logger) {
  const dataDir = config.NIGHTSHIFT_DATA_DIR;
  mkdirSync(dataDir, { recursive: true });
  const unlock = lockDataDir(dataDir);
  try {
    if (usearchUnavailable) log.error({ err: usearchUnavailable }, 'usearch could not be loaded: falling back to exact search in JS (slow beyond ~100k images)');
    const s3 = storageFromConfig(config);
    const model = await loadModel(config.NIGHTSHIFT_CLIP_MODEL, dataDir, log, {
      registry: { storage: s3, capBytes: registryCacheCap() },
      hubEndpoint: opts.NIGHTSHIFT_HF_ENDPOINT,
      hubTimeoutMs: opts.NIGHTSHIFT_INDEXER_HUB_TIMEOUT_S * 1000,
      imageBatchSize: opts.NIGHTSHIFT_INDEXER_BATCH,
      threads: opts.NIGHTSHIFT_INDEXER_ORT_THREADS,
    });
    const store = IndexStore.open(
      dataDir,
      { id: model.id, dim: model.embedder.dim },
      {
        dupDistance: opts.NIGHTSHIFT_INDEXER_DUP_DISTANCE,
        exactBelow: opts.NIGHTSHIFT_INDEXER_EXACT_BELOW,
        connectivity: opts.NIGHTSHIFT_INDEXER_HNSW_M,
        expansionAdd: opts.NIGHTSHIFT_INDEXER_HNSW_EF_ADD,
        expansionSearch: opts.NIGHTSHIFT_INDEXER_HNSW_EF_SEARCH,
        quantization: opts.NIGHTSHIFT_INDEXER_QUANTIZATION,
      },
      log,
    );
    const reindexer = new Reindexer(s3, store, model.embedder, log, {
      batchSize: opts.NIGHTSHIFT_INDEXER_BATCH,
      concurrency: opts.NIGHTSHIFT_INDEXER_CONCURRENCY,
      fault: opts.NIGHTSHIFT_INDEXER_FAULT,
    });
    return { model, store, storage: s3, reindexer, unlock };
  } catch (err) {
    unlock();
    throw err;
  }
}

export async function startIndexer(config: Config, log: Logger, options: IndexerOptions = loadIndexerOptions()): Promise<RunningIndexer> {
  const { model, store, storage: s3, reindexer, unlock } = await openIndex(config, options, log);
  const aesthetic = await openAesthetic(options.NIGHTSHIFT_AESTHETIC_MODEL, config.NIGHTSHIFT_DATA_DIR, s3, model, store, log).catch(async (err: unknown) => {
    store.close();
    await model.embedder.dispose();
    unlock();
    throw err;
  });
  const stale = store.catalog.countStale(model.id);
  if (stale) {
    reindexer.start('model');
    // Re-embedded rows lose their scores (a score belongs to its vector), and the start's backfill may pass them first.
    if (aesthetic) void reindexer.wait().then(() => aesthetic.backfillInBackground());
  }
  // Rows stored just before a crash may lack their near-duplicate marks.
  if (!reindexer.running) store.checkPendingDuplicates();

  const bus = await connectBus(config.NIGHTSHIFT_NATS_URL, 'indexer', undefined, natsAuth(config));
  await ensureStream(bus.jsm, streamLimits(config));
  const consumer = new IndexConsumer(bus, s3, store, model.embedder, log, {
    batchSize: options.NIGHTSHIFT_INDEXER_BATCH,
    concurrency: options.NIGHTSHIFT_INDEXER_CONCURRENCY,
    expiresMs: 1_000,
    ackWaitMs: options.NIGHTSHIFT_INDEXER_ACK_WAIT_S * 1000,
    fault: options.NIGHTSHIFT_INDEXER_FAULT,
  }, aesthetic);
  await consumer.start();
  aesthetic?.backfillInBackground(); // images indexed before this head was configured, or re-embedded
  const snapshots = setInterval(() => {
    try {
      store.saveSnapshot();
    } catch (err) {
      log.warn({ err: String(err) }, 'vector index snapshot failed');
    }
  }, options.NIGHTSHIFT_INDEXER_SNAPSHOT_S * 1000);
  snapshots.unref();

  const taste = new Taste(store, log);
  taste.everyoneChanged(); // images indexed while stopped are labels too: refresh every user's in the background
  const app = createIndexerApp({
    store,
    taste,
    aesthetic,
    embedder: model.embedder,
    storage: s3,
    reindexer,
    apiToken: config.NIGHTSHIFT_API_TOKEN,
    stats: () => ({
      indexed: store.index.size,
      model: model.id,
      ...(model.fallback ? { modelFallback: model.fallback } : {}),
      aestheticHead: aesthetic?.head.id ?? null,
      catalog: store.catalog.count(),
      stale: store.catalog.countStale(model.id),
      variants: store.catalog.variantCount(),
      mode: store.index.mode,
      openedBy: store.openedBy,
      consumer: { ...consumer.stats, maxInFlight: consumer.maxInFlight },
      reindex: reindexer.status,
      rssMb: Math.round(process.memoryUsage().rss / 1e6),
    }),
  });
  const metrics = indexerMetrics({ bus, consumer, store, storage: s3 });
  opsRoutes(app, metrics.ops, config.NIGHTSHIFT_METRICS_TOKEN);
  const http: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: metrics.timed(app.fetch), hostname: config.NIGHTSHIFT_HTTP_HOST, port: config.NIGHTSHIFT_INDEXER_PORT }, () => resolve(s));
  });
  const port = (http.address() as AddressInfo).port;
  log.info({ port, indexed: store.index.size, mode: store.index.mode, openedBy: store.openedBy }, 'indexer ready');
  return {
    port,
    consumer,
    store,
    reindexer,
    model,
    async stop() {
      clearInterval(snapshots);
      await taste.stop();
      await consumer.stop();
      await reindexer.stop();
      await aesthetic?.stop();
      await new Promise<void>((r) => http.close(() => r()));
      await bus.nc.close();
      store.close();
      await model.embedder.dispose();
      await aesthetic?.head.dispose();
      unlock();
    },
  };
}

/** Wires the indexer: model, catalog, in-memory index, consumer, HTTP. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { connectBus, ensureStream, Storage, type Config, type Logger } from '@nightshift/common';
import { Catalog, vectorOf } from './catalog.js';
import { FlatIndex } from './flat-index.js';
import { loadModel } from './model.js';
import { IndexConsumer } from './consumer.js';
import { createIndexerApp } from './http.js';

export interface RunningIndexer {
  port: number;
  consumer: IndexConsumer;
  catalog: Catalog;
  stop(): Promise<void>;
}

export async function startIndexer(config: Config, log: Logger): Promise<RunningIndexer> {
  const dataDir = config.NIGHTSHIFT_DATA_DIR;
  mkdirSync(dataDir, { recursive: true });
  const model = await loadModel(config.NIGHTSHIFT_CLIP_MODEL, dataDir, log);
  const catalog = new Catalog(join(dataDir, 'indexer.sqlite'));
  const index = new FlatIndex(model.embedder.dim);
  let stale = 0;
  for (const e of catalog.all()) {
    if (e.model !== model.id) stale++;
    else index.upsert(e.render_key, vectorOf(e));
  }
  if (stale) log.warn({ stale, model: model.id }, 'entries embedded by another model are not searchable until re-indexed');
  const storage = new Storage({
    endpoint: config.NIGHTSHIFT_S3_ENDPOINT,
    accessKey: config.NIGHTSHIFT_S3_ACCESS_KEY,
    secretKey: config.NIGHTSHIFT_S3_SECRET_KEY,
    bucket: config.NIGHTSHIFT_S3_BUCKET,
  });
  const bus = await connectBus(config.NIGHTSHIFT_NATS_URL, 'indexer');
  await ensureStream(bus.jsm);
  const consumer = new IndexConsumer(bus, storage, catalog, index, model, log);
  await consumer.start();
  const app = createIndexerApp({
    catalog,
    index,
    embedder: model.embedder,
    storage,
    apiToken: config.NIGHTSHIFT_API_TOKEN,
    stats: () => ({ indexed: index.size, model: model.id }),
  });
  const http: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: config.NIGHTSHIFT_HTTP_HOST, port: config.NIGHTSHIFT_INDEXER_PORT }, () => resolve(s));
  });
  const port = (http.address() as AddressInfo).port;
  log.info({ port, indexed: index.size }, 'indexer ready');
  return {
    port,
    consumer,
    catalog,
    async stop() {
      await consumer.stop();
      await new Promise<void>((r) => http.close(() => r()));
      await bus.nc.close();
      catalog.close();
    },
  };
}

/**
 * Wires the coordinator together and starts its servers. main.ts is the thin
 * entry point; tests and benchmarks start the same thing in-process.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { serve, type ServerType } from '@hono/node-server';
import { addService, NodeService, SweepService } from '@nightshift/proto';
import { connectBus, ensureStream, Storage, type Config, type Logger } from '@nightshift/common';
import { openDb } from './db.js';
import { Store } from './store.js';
import { Live } from './live.js';
import { NodeHub } from './node-hub.js';
import { OutboxPublisher } from './outbox.js';
import { createHttpApp } from './http.js';
import { sweepHandlers } from './sweep-grpc.js';
import type { CoordinatorDeps } from './deps.js';

export interface RunningCoordinator {
  deps: CoordinatorDeps;
  httpPort: number;
  grpcPort: number;
  stop(): Promise<void>;
}

export async function startCoordinator(config: Config, log: Logger): Promise<RunningCoordinator> {
  mkdirSync(config.NIGHTSHIFT_DATA_DIR, { recursive: true });
  const db = openDb(join(config.NIGHTSHIFT_DATA_DIR, 'coordinator.sqlite'));
  const store = new Store(db);
  store.markAllNodesOffline();
  const storage = new Storage({
    endpoint: config.NIGHTSHIFT_S3_ENDPOINT,
    accessKey: config.NIGHTSHIFT_S3_ACCESS_KEY,
    secretKey: config.NIGHTSHIFT_S3_SECRET_KEY,
    bucket: config.NIGHTSHIFT_S3_BUCKET,
  });
  await storage.ensureBucket();
  const bus = await connectBus(config.NIGHTSHIFT_NATS_URL, 'coordinator');
  await ensureStream(bus.jsm);
  const live = new Live();
  const outbox = new OutboxPublisher(store, bus.js, log);
  const hub = new NodeHub(
    store,
    live,
    log,
    { leaseMs: config.NIGHTSHIFT_LEASE_MS, heartbeatMs: config.NIGHTSHIFT_HEARTBEAT_MS, prefetchPerSlot: 2, nodeToken: config.NIGHTSHIFT_NODE_TOKEN },
    () => outbox.poke(),
  );
  const deps: CoordinatorDeps = { config, log, store, hub, live, outbox, storage };

  const grpcServer = new grpc.Server({ 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000, 'grpc.keepalive_permit_without_calls': 1 });
  addService(grpcServer, NodeService, { connect: hub.handle });
  addService(grpcServer, SweepService, sweepHandlers(deps));
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${config.NIGHTSHIFT_HTTP_HOST}:${config.NIGHTSHIFT_GRPC_PORT}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );

  const app = createHttpApp(deps);
  const http: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: config.NIGHTSHIFT_HTTP_HOST, port: config.NIGHTSHIFT_HTTP_PORT }, () => resolve(s));
  });
  const httpPort = (http.address() as AddressInfo).port;

  outbox.start();
  hub.start();
  log.info({ httpPort, grpcPort, dataDir: config.NIGHTSHIFT_DATA_DIR }, 'coordinator ready');

  return {
    deps,
    httpPort,
    grpcPort,
    async stop() {
      hub.stop();
      await outbox.stop();
      await new Promise<void>((r) => grpcServer.tryShutdown(() => r()));
      await new Promise<void>((r) => http.close(() => r()));
      await bus.nc.close();
      db.close();
    },
  };
}

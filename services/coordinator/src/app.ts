/**
 * Wires the coordinator together and starts its servers. main.ts is the thin
 * entry point; tests and benchmarks start the same thing in-process.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { serve, type ServerType } from '@hono/node-server';
import { addService, NodeService, SweepService } from '@nightshift/proto';
import { connectBus, ensureStream, grpcServerCredentials, natsAuth, natsCheck, s3Check, serverTlsMode, storageFromConfig, streamLimits, withRetry, type Bus, type Config, type Logger } from '@nightshift/common';
import { PreviewStore } from './previews.js';
import { openStore } from './open-engine.js';
import { farmOnline } from './farm-online.js';
import { LAST_SEEN_PRECISION_MS } from './store/nodes.js';
import { Live } from './live.js';
import { NodeHub } from './node-hub.js';
import { Placement } from './placement.js';
import { NodeModels } from './node-models.js';
import { OutboxPublisher } from './outbox.js';
import { createHttpApp } from './http.js';
import { sweepHandlers } from './sweep-grpc.js';
import type { CoordinatorDeps } from './deps.js';
import { NodeTokens } from './node-tokens.js';
import { createCoordinatorMetrics } from './metrics.js';
import { unsafeExposure } from './startup-checks.js';
import { HOUR_MS, Retention } from './retention.js';
import { WebhookWorker } from './webhooks-worker.js';

export interface RunningCoordinator {
  deps: CoordinatorDeps;
  httpPort: number;
  grpcPort: number;
  stop(): Promise<void>;
}

/** How long a stop waits for open calls and connections before cutting them. */
const STOP_GRACE_MS = 2_000;

/** Runs `close`; if it has not finished within `ms`, runs `force` too. Resolves when `close` finishes. */
function closeWithin(ms: number, close: (done: () => void) => void, force: () => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(force, ms);
    close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function startCoordinator(config: Config, log: Logger): Promise<RunningCoordinator> {
  const unsafe = unsafeExposure(config);
  if (unsafe) throw new Error(`refusing to start: ${unsafe}`);
  mkdirSync(config.NIGHTSHIFT_DATA_DIR, { recursive: true });
  // SQLite in the data folder, or PostgreSQL shared with other replicas (NIGHTSHIFT_DATABASE_URL); docs/design.md §4 "Store engines".
  const { engine, sqlite, shareSecret } = await openStore(config, log);
  // On PostgreSQL only this replica's own nodes and those of replicas gone: the others' stay online.
  await engine.nodes.markAllNodesOffline();
  // Nodes keep rendering while we are away; give them time to reconnect before requeueing their work.
  // A sweep being stored in parts when the coordinator stopped: its submitter heard no 201, so it is cancelled, not left half stored.
  const short = await engine.endSweepsStoredShort();
  if (short.length) log.warn({ sweeps: short }, 'sweeps the coordinator stopped storing part way are cancelled (their finished images are kept)');
  const extended = await engine.extendAllLeases(config.NIGHTSHIFT_RESTART_GRACE_MS);
  if (extended) log.info({ jobs: extended, graceMs: config.NIGHTSHIFT_RESTART_GRACE_MS }, 'leases extended for the restart grace period');
  const storage = storageFromConfig(config);
  // Neither S3 nor NATS has to be up for the coordinator to start and take sweeps.
  // Both keep trying in the background until stop().
  const stopConnecting = new AbortController();
  void withRetry(() => storage.ensureBucket(), {
    signal: stopConnecting.signal,
    onRetry: (err, n) => n === 1 && log.warn({ err: String(err) }, 'S3 not reachable yet, retrying'),
  }).catch(() => {});
  let bus: Bus | undefined;
  // Made before NATS may connect: the connect callback pokes it (on PostgreSQL opening the store awaits, so NATS can win the race).
  const outbox = new OutboxPublisher(engine, () => bus?.js, log);
  // The NATS login and stream limits from this coordinator's own config (not re-read from the environment per retry).
  const limits = streamLimits(config);
  const busReady = connectBus(config.NIGHTSHIFT_NATS_URL, 'coordinator', stopConnecting.signal, natsAuth(config)).then(async (b) => {
    await withRetry(() => ensureStream(b.jsm, limits), { signal: stopConnecting.signal });
    bus = b;
    log.info('connected to NATS');
    outbox.poke();
    return b;
  });
  const live = new Live();
  // Live clients hear of a change once it is committed: on SQLite every job's too (the one process made them all);
  // on PostgreSQL each sweep's and node's, whichever replica committed it.
  const stopHearing = sqlite
    ? (() => {
        const off = sqlite.onCommit((c) => {
          for (const e of c.events) live.emit(e);
        });
        return async () => off();
      })()
    : await engine.subscribeChanges((change) => {
        if (change.type !== 'resync') live.emit(change);
      });
  const tokens = new NodeTokens({ token: config.NIGHTSHIFT_NODE_TOKEN, tokens: config.NIGHTSHIFT_NODE_TOKENS, file: config.NIGHTSHIFT_NODE_TOKENS_FILE }, log);
  const metrics = createCoordinatorMetrics(engine, () => hub.connectedNodeIds().length, config.NIGHTSHIFT_ENERGY_PRICE);
  // Placement asks the hub which nodes are online; the hub asks placement about failures.
  // Several replicas: the farm's online nodes are every replica's (farm-online.ts); one process: its own sessions.
  const placement: Placement = new Placement(engine, sqlite ? () => hub.onlineCaps() : farmOnline(engine.nodes, () => hub.onlineCaps(), config.NIGHTSHIFT_NODE_TIMEOUT_MS + LAST_SEEN_PRECISION_MS));
  // What nodes hold of registry models: the hub records it (and writes it where every pick reads it), the dashboard shows it.
  const nodeModels = new NodeModels(() => hub.connectedNodeIds());
  const hub: NodeHub = new NodeHub(
    { engine, placement, live, log, previews: new PreviewStore(storage, log), storage, models: nodeModels },
    {
      leaseMs: config.NIGHTSHIFT_LEASE_MS,
      heartbeatMs: config.NIGHTSHIFT_HEARTBEAT_MS,
      nodeTimeoutMs: config.NIGHTSHIFT_NODE_TIMEOUT_MS,
      prefetchPerSlot: config.NIGHTSHIFT_PREFETCH_PER_SLOT,
      stragglerMinMs: config.NIGHTSHIFT_STRAGGLER_MIN_MS || Number.MAX_SAFE_INTEGER,
      tokens,
      observer: metrics.observer,
    },
  );
  // One process owns the SQLite file: its writes commit once per event-loop turn (StoreBase.batchTurns). A turn whose
  // commit failed undid what nodes were never told of; they reconnect and reconcile with what is stored.
  sqlite?.batchTurns(
    (err) => hub.resync(err),
    (err) => log.error({ err: String(err) }, 'a listener failed after a commit (the commit stands)'),
  );
  // Several replicas: work another replica queued reaches this one's nodes at once, not at the next tick.
  // (On SQLite this process made every change and fills its nodes itself.)
  const stopWaking = sqlite ? async () => {} : await engine.subscribe((wake) => wake.jobs && hub.wake());
  // `loop`: the scheduler tick and the node inbox last ran without a database error.
  const checks = { sqlite: () => engine.ping(), nats: natsCheck(() => bus?.nc), s3: s3Check(storage), loop: hub.health.check };
  const retention = new Retention(engine, log, { outboxMs: config.NIGHTSHIFT_OUTBOX_RETENTION_HOURS * HOUR_MS, resultsMs: config.NIGHTSHIFT_RESULTS_RETENTION_DAYS * 24 * HOUR_MS, webhookDeliveriesMs: config.NIGHTSHIFT_WEBHOOK_RETENTION_DAYS * 24 * HOUR_MS });
  const webhooks = new WebhookWorker(engine, log, {
    retryBaseMs: config.NIGHTSHIFT_WEBHOOK_RETRY_BASE_MS,
    retryForMs: config.NIGHTSHIFT_WEBHOOK_RETRY_HOURS * HOUR_MS,
    allow: config.NIGHTSHIFT_WEBHOOK_ALLOW,
  });
  const deps: CoordinatorDeps = { config, log, engine, shareSecret, hub, placement, live, storage, ops: { registry: metrics.registry, checks } };

  // Keepalive pings find a dead link (cable pulled, host gone) that TCP alone would not notice for minutes.
  const keepalive = config.NIGHTSHIFT_GRPC_KEEPALIVE_MS;
  const grpcServer = new grpc.Server({ 'grpc.keepalive_time_ms': keepalive, 'grpc.keepalive_timeout_ms': keepalive, 'grpc.keepalive_permit_without_calls': 1 });
  addService(grpcServer, NodeService, { connect: hub.handle });
  addService(grpcServer, SweepService, sweepHandlers(deps));
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${config.NIGHTSHIFT_HTTP_HOST}:${config.NIGHTSHIFT_GRPC_PORT}`, grpcServerCredentials(config), (err, port) =>
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
  retention.start();
  webhooks.start();
  log.info({ httpPort, grpcPort, dataDir: config.NIGHTSHIFT_DATA_DIR, grpcTls: serverTlsMode(config), nodeTokens: tokens.enabled ? tokens.size : 'none (open)' }, 'coordinator ready');

  return {
    deps,
    httpPort,
    grpcPort,
    async stop() {
      // Live streams (SSE, WatchSweep) end first: the servers below wait for open calls.
      live.close();
      hub.stop();
      await retention.stop();
      await webhooks.stop();
      await outbox.stop();
      await closeWithin(STOP_GRACE_MS, (done) => grpcServer.tryShutdown(done), () => grpcServer.forceShutdown());
      await closeWithin(STOP_GRACE_MS, (done) => http.close(() => done()), () => (http as Server).closeAllConnections());
      stopConnecting.abort();
      if (bus) await bus.nc.close();
      else void busReady.then((b) => b.nc.close()).catch(() => {});
      await stopHearing();
      await stopWaking();
      await engine.close();
    },
  };
}

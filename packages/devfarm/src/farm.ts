/**
 * A whole local farm as real processes: nats-server, the S3 server, the
 * coordinator, N gpu-nodes and (optionally) the indexer, all on loopback
 * under one data folder. The README's `up` command and the end-to-end tests
 * both start the farm through here, so what the tests prove is what users run.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Storage } from '@nightshift/common';
import { freePort, waitFor } from './ports.js';
import { startProcess, type ManagedProcess } from './process.js';
import { startNatsServer, type NatsServer, type NatsUser, type ServerPlacement } from './nats-server.js';
import { startS3Server, type S3Server } from './s3-server.js';
import type { PostgresServer } from './postgres.js';
import { openFarmDatabase, type FarmDatabase } from './farm-database.js';
import { coordinatorReplica, replicaLayouts, type CoordinatorReplica, type ReplicaLayout } from './coordinator-replicas.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SERVICE_MAIN = {
  coordinator: join(ROOT, 'services/coordinator/src/main.ts'),
  'gpu-node': join(ROOT, 'services/gpu-node/src/main.ts'),
  indexer: join(ROOT, 'services/indexer/src/main.ts'),
} as const;

/**
 * A farm spread over several hosts (network namespaces, test/netns): the
 * servers on one, each gpu-node on its own. Without it everything is on loopback.
 */
export interface FarmHosts {
  /** Address the servers listen on (0.0.0.0 inside their namespace). */
  bind: string;
  /** Address the other hosts reach the servers at. */
  serverAddress: string;
  /** Command prefix for nats-server, s3rver, the coordinator and the indexer. */
  serverPrefix: string[];
  /** Command prefix for gpu-node i. */
  nodePrefix(i: number): string[];
  /** Where this process reaches a server port (a forwarder into the servers' namespace). */
  reach(port: number): Promise<{ host: string; port: number }>;
}

export interface FarmOptions {
  dir: string;
  nodes?: number;
  indexer?: boolean;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Extra environment per gpu-node index. */
  nodeEnv?: (i: number) => Record<string, string>;
  clipModel?: string;
  echo?: boolean;
  ports?: { http?: number; grpc?: number; indexer?: number; nats?: number; s3?: number };
  hosts?: FarmHosts;
  /** NATS requires this user and password, and every service is given them. */
  natsAuth?: NatsUser;
  /**
   * Registry model caches: each gpu-node pulls into its own folder
   * (`modelCacheDir(farm.dir, i)`, empty at first); `gb` caps each one
   * (NIGHTSHIFT_MODEL_CACHE_GB; the node's default when absent).
   */
  modelCache?: { gb?: number };
  /** The S3 server appends every GET to `s3AccessLog(dir)` (JSON lines), so a test can count downloads. */
  s3AccessLog?: boolean;
  /** The S3 server paces every GET's body to this many bytes per second (a test that acts mid-download). */
  s3BytesPerSecond?: number;
  /**
   * Coordinator replicas on one PostgreSQL database (coordinator-replicas.ts); every
   * gpu-node is given all their gRPC addresses, replica 0's first. More than one
   * needs PostgreSQL: `postgres` is then `true` unless given.
   */
  replicas?: number;
  /** The coordinators keep their state in PostgreSQL: `true` starts a server of the farm's own (stopped with it), or a new database on this server. Without it: SQLite. */
  postgres?: PostgresServer | true;
}

/** Where a farm under `dir` logs its S3 GETs when `s3AccessLog` is set. */
export const s3AccessLog = (dir: string) => join(dir, 'logs', 's3-access.jsonl');

/** The registry model cache folder of gpu-node `i` of a farm under `dir`. */
export const modelCacheDir = (dir: string, i: number) => join(dir, `node-${i}`, 'model-cache');

export interface Farm {
  dir: string;
  nats: NatsServer;
  s3: S3Server;
  storage: Storage;
  env: Record<string, string>;
  apiUrl: string;
  indexerUrl: string;
  grpcAddress: string;
  /** Replica 0's process (the only coordinator unless `replicas`). */
  coordinator: ManagedProcess;
  /** Every coordinator replica, replica 0 (`apiUrl`, `grpcAddress`) first. */
  coordinators: CoordinatorReplica[];
  /** The PostgreSQL database the coordinators share; undefined on SQLite. */
  database: FarmDatabase | undefined;
  nodes: ManagedProcess[];
  indexer: ManagedProcess | undefined;
  startCoordinator(): Promise<ManagedProcess>;
  startNode(i: number): ManagedProcess;
  startIndexer(): Promise<ManagedProcess>;
  stop(): Promise<void>;
}

function tsMain(name: string, file: string, env: Record<string, string>, logFile: string, echo: boolean, prefix?: string[]): ManagedProcess {
  return startProcess(name, process.execPath, ['--import', 'tsx', file], { env: { ...process.env, ...env }, logFile, echo, prefix });
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url).catch(() => undefined);
  return res?.ok ?? false;
}

export async function startFarm(opts: FarmOptions): Promise<Farm> {
  const dir = opts.dir;
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const hosts = opts.hosts;
  const server = hosts?.serverAddress ?? '127.0.0.1';
  // Fresh namespaces have every port free, so ports picked here suit them too.
  const natsPort = opts.ports?.nats ?? (await freePort());
  const s3Port = opts.ports?.s3 ?? (await freePort());
  const place = async (port: number, log: string): Promise<ServerPlacement> => ({
    port,
    logFile: join(dir, 'logs', log),
    ...(hosts ? { bind: hosts.bind, host: hosts.serverAddress, prefix: hosts.serverPrefix, probe: await hosts.reach(port) } : {}),
  });
  const reachUrl = async (port: number) => {
    const r = hosts ? await hosts.reach(port) : { host: '127.0.0.1', port };
    return `http://${r.host}:${r.port}`;
  };
  const nats = await startNatsServer(join(dir, 'nats'), { ...(await place(natsPort, 'nats.log')), ...(opts.natsAuth ? { auth: opts.natsAuth } : {}) });
  // A farm that fails to start stops what it started: a server left running kept the test file alive until its timeout.
  const s3 = await startS3Server(join(dir, 's3'), { ...(await place(s3Port, 's3.log')), ...(opts.s3AccessLog ? { accessLog: s3AccessLog(dir) } : {}), ...(opts.s3BytesPerSecond ? { bytesPerSecond: opts.s3BytesPerSecond } : {}) }).catch(
    async (err: unknown) => {
      await nats.stop();
      throw err;
    },
  );
  const httpPort = opts.ports?.http ?? (await freePort());
  const grpcPort = opts.ports?.grpc ?? (await freePort());
  const layouts = await replicaLayouts(dir, opts.replicas ?? 1, { http: httpPort, grpc: grpcPort });
  const postgres = opts.postgres ?? (layouts.length > 1 ? true : undefined);
  let database: FarmDatabase | undefined;
  try {
    database = postgres ? await openFarmDatabase(dir, postgres) : undefined;
  } catch (err) {
    await Promise.all([nats.stop(), s3.stop()]);
    throw err;
  }
  const indexerPort = opts.ports?.indexer ?? (await freePort());
  const env: Record<string, string> = {
    NIGHTSHIFT_NATS_URL: nats.url,
    ...(opts.natsAuth ? { NIGHTSHIFT_NATS_USER: opts.natsAuth.user, NIGHTSHIFT_NATS_PASSWORD: opts.natsAuth.password } : {}),
    NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
    NIGHTSHIFT_S3_ACCESS_KEY: s3.accessKey,
    NIGHTSHIFT_S3_SECRET_KEY: s3.secretKey,
    NIGHTSHIFT_S3_BUCKET: 'nightshift',
    NIGHTSHIFT_COORDINATOR: layouts.map((l) => `${server}:${l.grpcPort}`).join(','),
    NIGHTSHIFT_HTTP_PORT: String(httpPort),
    NIGHTSHIFT_GRPC_PORT: String(grpcPort),
    NIGHTSHIFT_INDEXER_PORT: String(indexerPort),
    NIGHTSHIFT_INDEXER_URL: `http://${server}:${indexerPort}`,
    ...(hosts ? { NIGHTSHIFT_HTTP_HOST: hosts.bind } : {}),
    ...(opts.clipModel ? { NIGHTSHIFT_CLIP_MODEL: opts.clipModel } : {}),
    ...opts.env,
  };
  const storage = new Storage({ endpoint: s3.reachEndpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  await storage.ensureBucket().catch(async (err: unknown) => {
    await Promise.all([nats.stop(), s3.stop(), database?.close()]);
    throw err;
  });
  const echo = opts.echo ?? false;
  const apiUrl = await reachUrl(httpPort);
  const indexerUrl = await reachUrl(indexerPort);
  const launchCoordinator = (l: ReplicaLayout) => {
    const replicaEnv = { ...env, ...l.env, NIGHTSHIFT_DATA_DIR: l.dataDir, ...(database ? { NIGHTSHIFT_DATABASE_URL: database.url } : {}) };
    const p = tsMain(l.index ? `coordinator-${l.index}` : 'coordinator', SERVICE_MAIN.coordinator, replicaEnv, l.logFile, echo, hosts?.serverPrefix);
    if (l.index === 0) farm.coordinator = p;
    return p;
  };
  const coordinators = await Promise.all(
    layouts.map(async (l) => coordinatorReplica(l, { apiUrl: l.index ? await reachUrl(l.httpPort) : apiUrl, grpcAddress: `${server}:${l.grpcPort}` }, launchCoordinator)),
  );

  const farm: Farm = {
    dir,
    nats,
    s3,
    storage,
    env,
    apiUrl,
    indexerUrl,
    grpcAddress: `${server}:${grpcPort}`,
    coordinator: undefined as unknown as ManagedProcess,
    coordinators,
    database,
    nodes: [],
    indexer: undefined,
    startCoordinator() {
      return coordinators[0]!.start();
    },
    startNode(i: number) {
      const p = tsMain(
        `gpu-node-${i}`,
        SERVICE_MAIN['gpu-node'],
        {
          ...env,
          NIGHTSHIFT_NODE_ID: `node-${i}`,
          NIGHTSHIFT_NODE_NAME: `node-${i}`,
          NIGHTSHIFT_DATA_DIR: join(dir, `node-${i}`),
          NIGHTSHIFT_MODEL_CACHE: modelCacheDir(dir, i),
          ...(opts.modelCache?.gb !== undefined ? { NIGHTSHIFT_MODEL_CACHE_GB: String(opts.modelCache.gb) } : {}),
          ...opts.nodeEnv?.(i),
        },
        join(dir, `logs/gpu-node-${i}.log`),
        echo,
        hosts?.nodePrefix(i),
      );
      farm.nodes[i] = p;
      return p;
    },
    async startIndexer() {
      const p = tsMain('indexer', SERVICE_MAIN.indexer, { ...env, NIGHTSHIFT_DATA_DIR: join(dir, 'indexer') }, join(dir, 'logs/indexer.log'), echo, hosts?.serverPrefix);
      await waitFor('indexer /healthz', async () => {
        if (p.child.exitCode !== null) throw new Error(`indexer exited:\n${p.output()}`);
        return httpOk(`${indexerUrl}/healthz`);
      }, 60_000);
      farm.indexer = p;
      return p;
    },
    async stop() {
      await Promise.all([...farm.nodes.map((n) => n?.stop()), farm.indexer?.stop()]);
      await Promise.all(coordinators.map((c) => c.stop()));
      await database?.close();
      await Promise.all([nats.stop(), s3.stop()]);
    },
  };
  try {
    // One after another: the first replica makes the database's schema, the others find it made.
    for (const c of coordinators) await c.start();
    for (let i = 0; i < (opts.nodes ?? 2); i++) farm.startNode(i);
    if (opts.indexer) await farm.startIndexer();
  } catch (err) {
    await farm.stop();
    throw err;
  }
  return farm;
}

/** Waits until every expected gpu-node shows as online in GET /api/nodes. */
export async function waitForNodes(apiUrl: string, count: number, headers: Record<string, string> = {}): Promise<void> {
  await waitFor(`${count} online nodes`, async () => {
    const res = await fetch(`${apiUrl}/api/nodes`, { headers });
    const body = (await res.json()) as { nodes: { status: string }[] };
    return body.nodes.filter((n) => n.status === 'online').length >= count;
  }, 30_000);
}

/** Submits a sweep spec (POST /api/sweeps) and returns the response, for the test to check. */
export async function postSweep(apiUrl: string, spec: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${apiUrl}/api/sweeps`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(spec) });
}

/** A small sweep of four quick 64×64 images: two prompts, two seeds each. */
export const FOUR_IMAGES = { prompts: ['a red circle', 'a blue square'], seeds: { count: 2 }, params: { width: 64, height: 64, steps: 2 } };

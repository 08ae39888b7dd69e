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
import { startNatsServer, type NatsServer } from './nats-server.js';
import { startS3Server, type S3Server } from './s3-server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SERVICE_MAIN = {
  coordinator: join(ROOT, 'services/coordinator/src/main.ts'),
  'gpu-node': join(ROOT, 'services/gpu-node/src/main.ts'),
  indexer: join(ROOT, 'services/indexer/src/main.ts'),
} as const;

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
}

export interface Farm {
  dir: string;
  nats: NatsServer;
  s3: S3Server;
  storage: Storage;
  env: Record<string, string>;
  apiUrl: string;
  indexerUrl: string;
  grpcAddress: string;
  coordinator: ManagedProcess;
  nodes: ManagedProcess[];
  indexer: ManagedProcess | undefined;
  startCoordinator(): Promise<ManagedProcess>;
  startNode(i: number): ManagedProcess;
  startIndexer(): Promise<ManagedProcess>;
  stop(): Promise<void>;
}

function tsMain(name: string, file: string, env: Record<string, string>, logFile: string, echo: boolean): ManagedProcess {
  return startProcess(name, process.execPath, ['--import', 'tsx', file], { env: { ...process.env, ...env }, logFile, echo });
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url).catch(() => undefined);
  return res?.ok ?? false;
}

export async function startFarm(opts: FarmOptions): Promise<Farm> {
  const dir = opts.dir;
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const nats = await startNatsServer(join(dir, 'nats'), { ...(opts.ports?.nats ? { port: opts.ports.nats } : {}), logFile: join(dir, 'logs/nats.log') });
  const s3 = await startS3Server(join(dir, 's3'), { ...(opts.ports?.s3 ? { port: opts.ports.s3 } : {}), logFile: join(dir, 'logs/s3.log') });
  const httpPort = opts.ports?.http ?? (await freePort());
  const grpcPort = opts.ports?.grpc ?? (await freePort());
  const indexerPort = opts.ports?.indexer ?? (await freePort());
  const env: Record<string, string> = {
    NIGHTSHIFT_NATS_URL: nats.url,
    NIGHTSHIFT_S3_ENDPOINT: s3.endpoint,
    NIGHTSHIFT_S3_ACCESS_KEY: s3.accessKey,
    NIGHTSHIFT_S3_SECRET_KEY: s3.secretKey,
    NIGHTSHIFT_S3_BUCKET: 'nightshift',
    NIGHTSHIFT_COORDINATOR: `127.0.0.1:${grpcPort}`,
    NIGHTSHIFT_HTTP_PORT: String(httpPort),
    NIGHTSHIFT_GRPC_PORT: String(grpcPort),
    NIGHTSHIFT_INDEXER_PORT: String(indexerPort),
    NIGHTSHIFT_INDEXER_URL: `http://127.0.0.1:${indexerPort}`,
    ...(opts.clipModel ? { NIGHTSHIFT_CLIP_MODEL: opts.clipModel } : {}),
    ...opts.env,
  };
  const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  await storage.ensureBucket();
  const echo = opts.echo ?? false;
  const apiUrl = `http://127.0.0.1:${httpPort}`;
  const indexerUrl = `http://127.0.0.1:${indexerPort}`;

  const farm: Farm = {
    dir,
    nats,
    s3,
    storage,
    env,
    apiUrl,
    indexerUrl,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    coordinator: undefined as unknown as ManagedProcess,
    nodes: [],
    indexer: undefined,
    async startCoordinator() {
      const p = tsMain('coordinator', SERVICE_MAIN.coordinator, { ...env, NIGHTSHIFT_DATA_DIR: join(dir, 'coordinator') }, join(dir, 'logs/coordinator.log'), echo);
      await waitFor('coordinator /healthz', async () => {
        if (p.child.exitCode !== null) throw new Error(`coordinator exited:\n${p.output()}`);
        return httpOk(`${apiUrl}/healthz`);
      }, 30_000);
      farm.coordinator = p;
      return p;
    },
    startNode(i: number) {
      const p = tsMain(
        `gpu-node-${i}`,
        SERVICE_MAIN['gpu-node'],
        { ...env, NIGHTSHIFT_NODE_ID: `node-${i}`, NIGHTSHIFT_NODE_NAME: `node-${i}`, NIGHTSHIFT_DATA_DIR: join(dir, `node-${i}`), ...opts.nodeEnv?.(i) },
        join(dir, `logs/gpu-node-${i}.log`),
        echo,
      );
      farm.nodes[i] = p;
      return p;
    },
    async startIndexer() {
      const p = tsMain('indexer', SERVICE_MAIN.indexer, { ...env, NIGHTSHIFT_DATA_DIR: join(dir, 'indexer') }, join(dir, 'logs/indexer.log'), echo);
      await waitFor('indexer /healthz', async () => {
        if (p.child.exitCode !== null) throw new Error(`indexer exited:\n${p.output()}`);
        return httpOk(`${indexerUrl}/healthz`);
      }, 60_000);
      farm.indexer = p;
      return p;
    },
    async stop() {
      await Promise.all([...farm.nodes.map((n) => n?.stop()), farm.indexer?.stop()]);
      await farm.coordinator?.stop();
      await Promise.all([nats.stop(), s3.stop()]);
    },
  };
  try {
    await farm.startCoordinator();
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

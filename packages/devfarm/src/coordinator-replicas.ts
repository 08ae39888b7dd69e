/**
 * The coordinator processes of a farm: one (SQLite in its data folder, the
 * default) or several replicas sharing one PostgreSQL database, each with
 * its own process, data folder, log, and HTTP and gRPC ports. Replica 0 keeps
 * the one-coordinator layout (folder `coordinator`, `logs/coordinator.log`,
 * the farm's own ports), so a one-replica farm looks as it always did.
 */
import { join } from 'node:path';
import { freePort, waitFor } from './ports.js';
import type { ManagedProcess } from './process.js';

/** Where replica `index` lives and what it is told on top of the farm's environment. */
export interface ReplicaLayout {
  index: number;
  httpPort: number;
  grpcPort: number;
  dataDir: string;
  logFile: string;
  /** Replica 0's ports are the farm's (in its env, which a test may change before a restart); the others' are here. */
  env: Record<string, string>;
}

export interface CoordinatorReplica {
  index: number;
  /** This replica's HTTP API. */
  apiUrl: string;
  /** This replica's gRPC address, as the gpu-nodes are given it. */
  grpcAddress: string;
  dataDir: string;
  logFile: string;
  /** The process now (or last) running; undefined before the first start. */
  process: ManagedProcess | undefined;
  /** Starts the replica and waits for its /healthz. */
  start(): Promise<ManagedProcess>;
  /** Kills it without a shutdown (fault tests). */
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function replicaLayouts(dir: string, count: number, first: { http: number; grpc: number }): Promise<ReplicaLayout[]> {
  if (!Number.isInteger(count) || count < 1 || count > 16) throw new Error(`replicas: ${count}: use 1-16`);
  const out: ReplicaLayout[] = [{ index: 0, httpPort: first.http, grpcPort: first.grpc, dataDir: join(dir, 'coordinator'), logFile: join(dir, 'logs', 'coordinator.log'), env: {} }];
  for (let index = 1; index < count; index++) {
    const [httpPort, grpcPort] = [await freePort(), await freePort()];
    out.push({
      index,
      httpPort,
      grpcPort,
      dataDir: join(dir, `coordinator-${index}`),
      logFile: join(dir, 'logs', `coordinator-${index}.log`),
      env: { NIGHTSHIFT_HTTP_PORT: String(httpPort), NIGHTSHIFT_GRPC_PORT: String(grpcPort) },
    });
  }
  return out;
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url).catch(() => undefined);
  return res?.ok ?? false;
}

/** A replica started by `launch` (the farm's: its environment, log and host prefix). */
export function coordinatorReplica(layout: ReplicaLayout, at: { apiUrl: string; grpcAddress: string }, launch: (layout: ReplicaLayout) => ManagedProcess): CoordinatorReplica {
  const replica: CoordinatorReplica = {
    index: layout.index,
    ...at,
    dataDir: layout.dataDir,
    logFile: layout.logFile,
    process: undefined,
    async start() {
      const p = launch(layout);
      replica.process = p;
      const name = layout.index ? `coordinator replica ${layout.index}` : 'coordinator';
      await waitFor(`${name} /healthz`, async () => {
        if (p.child.exitCode !== null) throw new Error(`${name} exited:\n${p.output()}`);
        return httpOk(`${at.apiUrl}/healthz`);
      }, 30_000);
      return p;
    },
    async kill9() {
      await replica.process?.kill9();
    },
    async stop() {
      await replica.process?.stop();
    },
  };
  return replica;
}

/** Wires a gpu-node: backends, storage, worker and the coordinator connection. */
import { hostname } from 'node:os';
import { grpcClientCredentials, storageFromConfig, type Config, type Logger } from '@nightshift/common';
import type { Backend } from './backends/backend.js';
import { backendsFromEnv } from './backends/registry.js';
import { Connection } from './connection.js';
import { Worker } from './worker.js';
import { parseFaults, withStorageFaults } from './faults.js';
import { createNodeMetrics, startNodeOpsServer } from './metrics.js';

export interface RunningNode {
  nodeId: string;
  worker: Worker;
  connection: Connection;
  /** Port of /metrics, /healthz, /readyz (NIGHTSHIFT_NODE_METRICS_PORT), if enabled. */
  metricsPort: number | undefined;
  stop(): Promise<void>;
}

/** The node's backends: from the node config named by NIGHTSHIFT_NODE_CONFIG, else procedural only. */
export function defaultBackends(env: NodeJS.ProcessEnv = process.env): Map<string, Backend> {
  return backendsFromEnv(env);
}

export async function startNode(config: Config, log: Logger, backends = defaultBackends()): Promise<RunningNode> {
  const nodeId = config.NIGHTSHIFT_NODE_ID ?? `${hostname()}-${process.pid}`;
  const storage = storageFromConfig(config);
  // Assigned below; the closures that read it only run once the node has started.
  let connection: Connection | undefined; // eslint-disable-line prefer-const
  const connected = () => connection?.connected ?? false;
  const metrics = createNodeMetrics(nodeId, () => worker.heldJobIds().length, connected);
  const worker = new Worker({
    nodeId,
    slots: config.NIGHTSHIFT_NODE_SLOTS,
    backends,
    storage: withStorageFaults(storage, parseFaults(process.env.NIGHTSHIFT_FAULTS)),
    log,
    report: (r) => {
      metrics.observe(r);
      connection?.report(r);
    },
  });
  const tls = grpcClientCredentials(config);
  connection = new Connection({
    address: config.NIGHTSHIFT_COORDINATOR,
    credentials: tls.credentials,
    channelOptions: tls.options,
    keepaliveMs: config.NIGHTSHIFT_GRPC_KEEPALIVE_MS,
    nodeId,
    name: config.NIGHTSHIFT_NODE_NAME ?? nodeId,
    capabilities: {
      gpuName: config.NIGHTSHIFT_NODE_GPU,
      vramMb: config.NIGHTSHIFT_NODE_VRAM_MB,
      backends: [...backends.keys()],
      models: [...backends.values()].flatMap((b) => [...b.models]),
      slots: config.NIGHTSHIFT_NODE_SLOTS,
    },
    token: config.NIGHTSHIFT_NODE_TOKEN,
    heldJobIds: () => worker.heldJobIds(),
    onAssign: (job) => worker.assign(job),
    onCancel: (jobId) => worker.cancel(jobId),
    log,
  });
  if (process.env.NIGHTSHIFT_FAULTS) log.warn({ faults: process.env.NIGHTSHIFT_FAULTS }, 'FAULT INJECTION ENABLED (tests only)');
  const ops = config.NIGHTSHIFT_NODE_METRICS_PORT === undefined ? undefined : await startNodeOpsServer(config.NIGHTSHIFT_HTTP_HOST, config.NIGHTSHIFT_NODE_METRICS_PORT, metrics, storage, connected, config.NIGHTSHIFT_METRICS_TOKEN);
  worker.start();
  connection.start();
  log.info({ nodeId, backends: [...backends.keys()], coordinator: config.NIGHTSHIFT_COORDINATOR, tls: !!config.NIGHTSHIFT_TLS_CA, metricsPort: ops?.port }, 'gpu-node started');
  return {
    nodeId,
    worker,
    connection,
    metricsPort: ops?.port,
    async stop() {
      connection.close();
      await ops?.close();
      await worker.stop();
      // Generators still running (a stop mid-job) are killed with their process groups.
      await Promise.all([...backends.values()].map((b) => b.close?.()));
    },
  };
}
